"""HTTP: /metrics, health endpoints, and (later) the API and status page."""
