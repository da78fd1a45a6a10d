"""Normalized container state shared by every source and read by every collector."""
from exporter.state.model import ContainerRecord, Health, Phase, PodMeta, Source
from exporter.state.reasons import Classification, Reason
from exporter.state.store import SourceStatus, StateStore, Transition

__all__ = [
    "Classification", "ContainerRecord", "Health", "Phase", "PodMeta", "Reason", "Source",
    "SourceStatus", "StateStore", "Transition",
]
