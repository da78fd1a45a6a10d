"""When the agent runs: APScheduler with an interval (+ jitter) or a cron expression.

One job with `max_instances=1`: a run still going when the next is due is skipped by
APScheduler and counted here (`role_agent_runs_total{result="skipped"}`), never overlapped.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from exporter.device.agent import AgentRunner

log = logging.getLogger(__name__)
JOB_ID = "agent"


class _SkipNoiseFilter(logging.Filter):
    """APScheduler warns on every skipped run; we log once per streak and count them instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


_SKIP_FILTER = _SkipNoiseFilter()


def build_trigger(*, every: float, jitter: float = 0.0, cron: str = "") -> BaseTrigger:
    """A cron trigger when `cron` is set, else an interval trigger; ValueError names the bad input."""
    if cron:
        try:
            return CronTrigger.from_crontab(cron)
        except ValueError as exc:
            raise ValueError(f"agent.cron: expected 5 cron fields like \"*/5 * * * *\", got {cron!r} ({exc})") from None
    if not every > 0:
        raise ValueError(f"agent.every: expected a duration > 0, got {every!r}")
    return IntervalTrigger(seconds=every, jitter=jitter or None)


def trigger_interval(trigger: BaseTrigger, now: datetime | None = None) -> float | None:
    """The longest expected time between two runs, for alerts; None if the trigger never fires again.

    Interval trigger: `every` plus its jitter. Cron: the longest gap between fire times from the
    next one over 8 days, and at least the first gap (a weekday-only schedule has its weekend gap,
    a monthly one its month), in real seconds (a DST change makes a wall-clock day 23 or 25 h).
    """
    if isinstance(trigger, IntervalTrigger):
        return trigger.interval.total_seconds() + float(trigger.jitter or 0)
    previous = trigger.get_next_fire_time(None, now or datetime.now(timezone.utc))
    if previous is None:
        return None
    horizon, longest = previous + timedelta(days=8), 0.0
    for _ in range(12_000):  # "* * * * *" fires 11,520 times in 8 days
        following = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
        if following is None:
            break
        longest = max(longest, following.timestamp() - previous.timestamp())
        if following > horizon:
            break
        previous = following
    return longest or None


class AgentScheduler:
    """Runs `runner.run()` on its trigger in a background thread; `stop()` kills a run in progress."""

    def __init__(self, runner: AgentRunner, trigger: BaseTrigger, *, run_at_start: bool = True) -> None:
        self.runner = runner
        self.trigger = trigger
        self._scheduler = BackgroundScheduler(timezone=timezone.utc)
        self._scheduler.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_SUBMITTED)
        first = datetime.now(timezone.utc) if run_at_start and isinstance(trigger, IntervalTrigger) else None
        kwargs = {"next_run_time": first} if first is not None else {}
        self._scheduler.add_job(runner.run, trigger, id=JOB_ID, name=f"agent:{runner.config.name}",
                                max_instances=1, coalesce=True, misfire_grace_time=None, **kwargs)
        self._skipping = False
        interval = trigger_interval(trigger)
        if interval is not None:
            runner.status.set_interval(interval)
        logging.getLogger("apscheduler.scheduler").addFilter(_SKIP_FILTER)  # idempotent: same object

    def __repr__(self) -> str:
        return f"AgentScheduler({self.runner!r}, trigger={self.trigger})"

    def _on_event(self, event: JobEvent) -> None:
        job = self._scheduler.get_job(JOB_ID)
        next_run = job.next_run_time.timestamp() if job is not None and job.next_run_time else None
        self.runner.status.set_next_run(next_run)
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.runner.status.record_skipped()
            if not self._skipping:
                log.warning("agent run skipped: the previous run is still going", extra={"fields": {
                    "agent": self.runner.config.name}})
            self._skipping = True
        else:
            self._skipping = False

    def failure(self) -> str | None:
        """Why the schedule stopped although nobody stopped it (its thread died), else None."""
        thread = getattr(self._scheduler, "_thread", None)  # BackgroundScheduler's own thread
        if self._scheduler.running and thread is not None and not thread.is_alive():
            return f"the scheduler of agent {self.runner.config.name!r} stopped; the agent would never run again"
        return None

    def start(self) -> None:
        self._scheduler.start()
        log.info("agent scheduled", extra={"fields": {"agent": self.runner.config.name, "trigger": str(self.trigger),
                                                       "command": " ".join(self.runner.command)}})

    def stop(self) -> None:
        self.runner.cancel()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
