"""resilience-exporter: Kubernetes-grade failure visibility for Docker and Kubernetes fleets.

Data flows one way: sources (engines) -> state (normalized store) -> metrics (rendered text)
-> web (HTTP). The `resilience` subpackage is a standalone retry/back-off/breaker library.
"""
__version__ = "0.1.0"
