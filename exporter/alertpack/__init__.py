"""The alert pack: Prometheus rules, their promtool unit tests, the Alertmanager config and the
Slack template, rendered from templates with a site's selectors and URLs (kubernetes-mixin's
`_config`, as a `resilience-exporter alerts render` subcommand)."""
from __future__ import annotations

from exporter.alertpack.render import PackConfig, PackConfigError, load_config, render_pack, write_pack

__all__ = ["PackConfig", "PackConfigError", "load_config", "render_pack", "write_pack"]
