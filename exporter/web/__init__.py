"""HTTP: /metrics, the health endpoints, the status API and the status page."""
