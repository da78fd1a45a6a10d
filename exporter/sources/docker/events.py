"""Parse Docker Engine events and inspect timestamps into small typed values.

The engine's event JSON (API >= 1.22) carries `Type`, `Action`, `Actor.ID`,
`Actor.Attributes` (name, image, exitCode, ...) and `timeNano`. Health events spell their status
inside the action (`health_status: unhealthy`); health checks also emit noisy `exec_*` events.
Anything malformed raises MalformedEvent so the watcher can count it and go on.
"""
from __future__ import annotations

from typing import Any, NamedTuple

# Actions the watcher asks the engine for (server-side filter) and understands.
CONTAINER_ACTIONS = ("create", "start", "die", "oom", "kill", "health_status", "restart", "pause",
                     "unpause", "destroy", "rename", "stop", "update", "cleanup")
# Podman's compat API filters on its own event names and only renames them on output: `died` is
# sent as `die`, `remove` (Docker's `destroy`) as itself. `cleanup` follows a start that failed.
PODMAN_FILTER_ACTIONS = ("died", "remove")
ALIASES = {"remove": "destroy", "died": "die"}
# A network `disconnect` for a never-started container is the only trace a failed start leaves.
NETWORK_ACTIONS = ("disconnect",)


class MalformedEvent(ValueError):
    """An event the engine should never send: missing or mistyped fields."""


class DockerEvent(NamedTuple):
    """One parsed event (a NamedTuple: built ~6x faster than a frozen dataclass, per event)."""

    type: str
    action: str
    container_id: str
    time_nano: int
    name: str = ""
    exit_code: int | None = None
    health: str = ""
    old_name: str = ""
    signal: int | None = None

    @property
    def time(self) -> float:
        return self.time_nano / 1e9


def parse_event(raw: Any) -> DockerEvent:
    """One engine event (already JSON-decoded) -> DockerEvent, or MalformedEvent.

    Runs per event: it reads only the attributes the lifecycle uses for that action.
    """
    if type(raw) is not dict:
        raise MalformedEvent(f"event is not an object: {type(raw).__name__}")
    etype, action, actor = raw.get("Type"), raw.get("Action"), raw.get("Actor")
    if type(etype) is not str or type(action) is not str or type(actor) is not dict:
        raise MalformedEvent("event lacks Type, Action or Actor")
    attrs = actor.get("Attributes") or {}
    if type(attrs) is not dict:
        raise MalformedEvent("Actor.Attributes is not an object")
    time_nano = raw.get("timeNano")
    if type(time_nano) is not int:
        seconds = raw.get("time")
        if type(seconds) is not int:
            raise MalformedEvent("event lacks timeNano and time")
        time_nano = seconds * 1_000_000_000
    if etype == "network":
        container_id = attrs.get("container")
        if type(container_id) is not str or not container_id:
            raise MalformedEvent("network event without Actor.Attributes.container")
        return DockerEvent(etype, action, container_id, time_nano)
    container_id = actor.get("ID")
    if type(container_id) is not str or not container_id:
        raise MalformedEvent("container event without Actor.ID")
    verb, colon, rest = action.partition(":")
    verb = ALIASES.get(verb, verb)
    if colon:  # "health_status: healthy"; exec_* actions carry their command here
        return DockerEvent(etype, verb, container_id, time_nano,
                           health=rest.strip() if verb == "health_status" else "")
    if verb == "die":
        code = attrs.get("exitCode")
        try:
            exit_code = int(code) if code is not None else None
        except (TypeError, ValueError):
            raise MalformedEvent(f"exitCode is not an integer: {code!r}") from None
        return DockerEvent(etype, verb, container_id, time_nano, exit_code=exit_code)
    if verb == "kill":
        signal = attrs.get("signal")
        return DockerEvent(etype, verb, container_id, time_nano,
                           signal=int(signal) if type(signal) is str and signal.isdigit() else None)
    if verb == "create":  # its name, for a container removed before it could be inspected (`--rm`)
        name = attrs.get("name", "")
        return DockerEvent(etype, verb, container_id, time_nano, name=name if type(name) is str else "")
    if verb == "rename":
        name, old_name = attrs.get("name", ""), attrs.get("oldName", "")
        if type(name) is not str or type(old_name) is not str:
            raise MalformedEvent("rename without string name/oldName")
        return DockerEvent(etype, verb, container_id, time_nano, name=name, old_name=old_name.lstrip("/"))
    return DockerEvent(etype, verb, container_id, time_nano)
