"""The Kubernetes source: pod statuses by list+watch -> the same records as the Docker source."""
from exporter.sources.kubernetes.watcher import KubernetesWatcher

__all__ = ["KubernetesWatcher"]
