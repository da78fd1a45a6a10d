"""Collectors that read the state store and the resilience registry, and the exposition."""
from exporter.metrics.containers import CONTAINER_FAMILIES, ContainerCollector
from exporter.metrics.exposition import Exposition
from exporter.metrics.family import Family
from exporter.metrics.resilience import ResilienceCollector
from exporter.metrics.selfmetrics import SelfCollector

__all__ = ["CONTAINER_FAMILIES", "ContainerCollector", "Exposition", "Family",
           "ResilienceCollector", "SelfCollector"]
