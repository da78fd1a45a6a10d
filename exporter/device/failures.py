"""Agent exit codes -> failure types (a bounded label) and the remedy that travels with each.

The fleet's role-agent signals what went wrong through its exit code; the map is configurable
and anything unmapped becomes `exit_<n>`, so label values stay bounded by the 0-255 exit codes.
"""
from __future__ import annotations

from typing import Mapping

from exporter.config.schema import FLEET_EXIT_CODES, check_exit_codes
from exporter.device.process import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_TIMEOUT

BUILTIN_EXIT_CODES: dict[int, str] = {
    EXIT_TIMEOUT: "timeout", 137: "killed", EXIT_NOT_EXECUTABLE: "not_executable", EXIT_NOT_FOUND: "not_found",
}
"""Always known unless the configuration maps the code differently."""

REMEDIES: dict[str, str] = {
    "inventory_missing": "the device is missing from the fleet inventory; add it (inventory/devices.yaml) and rerun",
    "compose_failed": "docker compose failed; check the stack's configuration and env, then rerun the agent",
    "rollback_failed": "the rollback after a failed converge failed too; inspect the device by hand",
    "timeout": "the agent ran past agent.timeout and its process group was killed; find the step that hangs",
    "killed": "the agent was killed by SIGKILL (often the OOM killer); check memory and dmesg",
    "not_executable": "the agent command is not executable; chmod +x it or fix agent.command",
    "not_found": "the agent command does not exist; fix agent.command",
}


class FailureTypes:
    """Resolves exit codes to failure types with the configured map over the built-in one."""

    def __init__(self, configured: Mapping[int, str] | None = None) -> None:
        self._map = {**BUILTIN_EXIT_CODES, **(FLEET_EXIT_CODES if configured is None else dict(configured))}
        check_exit_codes(self._map)

    def __repr__(self) -> str:
        return f"FailureTypes({self._map!r})"

    def of(self, exit_code: int) -> str | None:
        """None for success (exit 0), else the mapped name or `exit_<n>`."""
        if exit_code == 0:
            return None
        return self._map.get(exit_code, f"exit_{exit_code}")

    @staticmethod
    def remedy(failure_type: str) -> str:
        return REMEDIES.get(failure_type, "see stderr_tail in health.json and the agent's journal")
