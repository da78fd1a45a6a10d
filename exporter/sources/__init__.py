"""Sources: the only code that talks to engines (dockerd, the Kubernetes API).

A source writes records into the state store and its own status (up, synced, events); it never
renders metrics. `build_sources` decides which sources a configuration asks for.
"""
from __future__ import annotations

import logging
from typing import Protocol

from exporter.config import Config
from exporter.resilience import ResilienceRegistry
from exporter.state import StateStore

log = logging.getLogger(__name__)


class Source(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def build_sources(config: Config, store: StateStore, registry: ResilienceRegistry) -> list[Source]:
    """The sources this configuration enables; none yet is a normal, logged situation."""
    sources: list[Source] = []
    if not sources:
        log.warning("no Docker or Kubernetes source is configured or reachable; "
                    "serving resilience and self metrics only")
    return sources
