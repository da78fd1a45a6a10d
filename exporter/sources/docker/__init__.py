"""The Docker source: engine events and inspect results -> kubelet-vocabulary records."""
from exporter.sources.docker.watcher import DockerWatcher

__all__ = ["DockerWatcher"]
