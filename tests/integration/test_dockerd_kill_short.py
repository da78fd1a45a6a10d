"""dockerd kill -9 + restart during a crash storm, 3 trials (issue 8; 20 in `python -m bench.dockerd_kill`).

It runs on a dockerd of its own, not the session's `dockerd`: a SIGKILLed dockerd 20.10 often
leaves a container it was starting with a stale containerd task ("task ... already exists",
the trial cleans those up as an operator would), its restore stops and restarts every container
of other tests, and only a private daemon lets the test prove that nothing it started outlives
it (processes, mounts, shim sockets). The session daemon is never touched, so the tests after
this one find it as it was. Costs ~4 s of daemon start and image import.

The lifecycle tests at the end replay, without an engine, the event orders the trial found
double-counted or lost before the fix.
"""
from __future__ import annotations

from typing import Any

from bench import dockerd_kill
from exporter.sources.docker.events import DockerEvent
from exporter.sources.docker.lifecycle import DockerLifecycle
from exporter.state import ContainerRecord, Reason
from tests.harness import require_binary
from tests.integration.dockerd import require_root

TRIALS = 3


def test_dockerd_kill9_during_a_crash_storm_counts_each_engine_reported_failure_once() -> None:
    require_root()
    require_binary("dockerd")
    require_binary("runc")
    lines: list[str] = []
    result = dockerd_kill.run_trials(TRIALS, log=lines.append)
    story = "\n".join(lines)
    assert not result.error, f"{result.error}\n{story}"
    assert result.trials_done == TRIALS
    assert not result.leftovers, result.leftovers  # no process, mount or shim socket left behind
    assert not result.restarts_mismatch, f"restarts never equalled RestartCount after trials {result.restarts_mismatch}"
    assert {c.name for c in result.containers} == {s.name for s in dockerd_kill.SPECS}
    for c in result.containers:
        assert c.runs >= TRIALS, c  # each trial waits for a run of every container
        assert c.ours_exits == c.engine_exits, f"{c}\n{story}"   # each failure the engine reports, once
        assert c.ours_ooms == c.engine_ooms, f"{c}\n{story}"
        assert c.ours_restarts == c.engine_restarts, f"{c}\n{story}"
        assert c.ours_exit_code == c.engine_exit_code == (137 if c.name == "oom" else 3), f"{c}\n{story}"
        assert 0 <= c.silent <= TRIALS, c  # at most one exit per kill goes unreported
    assert result.met


# -- the event orders behind the fixes, without an engine -----------------------------------------
CID = "d" * 64
T0 = 1767225600.0


def _inspect(status: str, *, started: float, finished: float | None, exit_code: int, oom: bool = False,
             restarts: int = 1, error: str = "") -> dict[str, Any]:
    def stamp(t: float | None) -> str:
        if t is None:
            return "0001-01-01T00:00:00Z"
        whole = int(t)
        return f"2026-01-01T00:00:{whole - int(T0):02d}.{round((t - whole) * 1e9):09d}Z"

    return {"Id": CID, "Name": "/storm", "RestartCount": restarts, "Created": "2026-01-01T00:00:00Z",
            "State": {"Status": status, "ExitCode": exit_code, "StartedAt": stamp(started),
                      "FinishedAt": stamp(finished), "OOMKilled": oom, "Error": error},
            "Config": {"Image": "testbox:1", "Labels": {}}, "HostConfig": {"RestartPolicy": {"Name": "always"}}}


def _ev(action: str, t: float, **kw: Any) -> DockerEvent:
    return DockerEvent("container", action, CID, int(t * 1e9), **kw)


def _exits(r: ContainerRecord | None) -> dict[Reason, int]:
    """The failures that count terminations (CrashLoopBackOff entries are not exits)."""
    assert r is not None
    return {reason: n for reason, n in r.failures.items() if reason in dockerd_kill.EXIT_REASONS}


def _running(life: DockerLifecycle) -> ContainerRecord:
    return life.from_inspect(_inspect("running", started=T0 + 1, finished=None, exit_code=0, restarts=0), None)


def test_oom_replayed_before_a_relist_and_its_die_after_is_one_oom_kill() -> None:
    life = DockerLifecycle("h")
    r = _running(life)
    r = life.apply(_ev("start", T0 + 2.0), r)   # replayed: the run after the restore ...
    r = life.apply(_ev("oom", T0 + 2.05), r)    # ... and its OOM kill, before the session's `now`
    r = life.from_inspect(_inspect("restarting", started=T0 + 2.0, finished=T0 + 2.18, exit_code=137, oom=True), r)
    r = life.apply(_ev("die", T0 + 2.18, exit_code=137), r)  # after `now`: the live stream
    assert r is not None and r.oom_kills == 1 and _exits(r) == {Reason.OOM_KILLED: 1}


def test_oom_after_its_die_is_one_failure_and_one_oom_kill() -> None:
    life = DockerLifecycle("h")
    r = life.apply(_ev("start", T0 + 2.0), _running(life))
    r = life.apply(_ev("die", T0 + 2.05, exit_code=137), r)
    r = life.apply(_ev("oom", T0 + 2.13), r)    # containerd delivered the OOM 80 ms after the exit
    assert r is not None and r.oom_kills == 1 and sum(_exits(r).values()) == 1
    assert r.last_terminated_reason is Reason.OOM_KILLED


def test_an_inspect_of_a_running_container_leaves_its_last_exit_to_the_die_event() -> None:
    life = DockerLifecycle("h")
    r = life.apply(_ev("start", T0 + 2.0), _running(life))
    # Relisted after the next start: the engine has zeroed ExitCode, FinishedAt is the crash at 2.3 s.
    r = life.from_inspect(_inspect("running", started=T0 + 2.45, finished=T0 + 2.3, exit_code=0, restarts=1), r)
    assert not _exits(r) and r.last_exit_code is None
    r = life.apply(_ev("die", T0 + 2.3, exit_code=3), r)  # its die, on the live stream after the relist
    r = life.apply(_ev("start", T0 + 2.45), r)
    assert r is not None and _exits(r) == {Reason.ERROR: 1} and r.last_exit_code == 3 and r.restarts == 1


def test_an_oom_earlier_in_the_inspected_run_than_its_exit_is_not_counted_again() -> None:
    life = DockerLifecycle("h")
    r = life.apply(_ev("start", T0 + 2.0), _running(life))
    r = life.from_inspect(_inspect("restarting", started=T0 + 2.0, finished=T0 + 2.5, exit_code=137, oom=True), r)
    assert r.oom_kills == 1 and _exits(r) == {Reason.OOM_KILLED: 1}
    r = life.apply(_ev("oom", T0 + 2.3), r)     # 200 ms before the exit, inside the inspected run
    r = life.apply(_ev("die", T0 + 2.5, exit_code=137), r)
    assert r is not None and r.oom_kills == 1 and _exits(r) == {Reason.OOM_KILLED: 1}
