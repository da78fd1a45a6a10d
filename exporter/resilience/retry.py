"""RetryPolicy: bounded, budgeted, classified retries for sync and asyncio callables.

Gives up by re-raising the last original exception (never a wrapper), so callers' except
clauses keep working; outcomes and per-attempt error codes land in the registry. An error with
a numeric ``retry_after`` (a server's Retry-After) waits at least that long; ``max_elapsed`` still bounds it.
"""
from __future__ import annotations

import functools
import inspect
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

from .backoff import BackoffStrategy, FullJitter
from .budget import RetryBudget
from .errors import ErrorCode, classify
from . import registry as _registry_module
from .registry import ResilienceRegistry, RetryOutcome

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_RETRY_ON: frozenset[ErrorCode] = frozenset(code for code in ErrorCode if code.retryable)
_CAUTIOUS_RETRIES_PER_CALL = 1


async def _asyncio_sleep(seconds: float) -> None:
    """``asyncio.sleep``, imported on first use: sync-only users (the exporter) never load asyncio."""
    import asyncio

    await asyncio.sleep(seconds)


@dataclass(frozen=True, eq=False)
class RetryPolicy:
    """Immutable retry configuration; ``retry``/``retry_async`` run it, the instance decorates."""

    name: str = "default"
    max_attempts: int | None = 3
    max_elapsed: float | None = None
    backoff: BackoffStrategy = FullJitter(1.0, 30.0)
    retry_on: frozenset[ErrorCode] | Callable[[BaseException], bool] = DEFAULT_RETRY_ON
    classifier: Callable[[BaseException], ErrorCode] = field(default=classify, repr=False)
    budget: RetryBudget | None = field(default=None, repr=False)
    registry: ResilienceRegistry | None = field(default=None, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=_asyncio_sleep, repr=False)
    rng: random.Random | None = field(default=None, repr=False)
    before_sleep: Callable[[int, float, BaseException], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts is not None and not (isinstance(self.max_attempts, int) and self.max_attempts >= 1):
            raise ValueError(f"max_attempts must be an int >= 1 or None, got {self.max_attempts!r}")
        if self.max_elapsed is not None and not self.max_elapsed >= 0:
            raise ValueError(f"max_elapsed must be >= 0 seconds or None, got {self.max_elapsed!r}")
        retry_on = self.retry_on
        if not callable(retry_on):
            retry_on = frozenset(ErrorCode(code) for code in retry_on)
            object.__setattr__(self, "retry_on", retry_on)
        registry = self.registry if self.registry is not None else _registry_module.REGISTRY
        # Resolved once so the success fast path touches no defaults and no dict lookups.
        set_ = functools.partial(object.__setattr__, self)
        set_("_registry", registry)
        set_("_budget", self.budget if self.budget is not None else registry.budget)
        # Registering the name now makes its retry series visible (zeros) before the first call.
        set_("_counter", registry.retry_counter(self.name))

    # ---------------------------------------------------------------- decisions
    def _wants(self, exc: BaseException, code: ErrorCode, cautious_used: int) -> bool:
        retry_on = self.retry_on
        if callable(retry_on):
            return bool(retry_on(exc))
        if code not in retry_on:
            return False
        return not code.cautious or cautious_used < _CAUTIOUS_RETRIES_PER_CALL

    def _next_delay(self, exc: BaseException, attempts: int, previous: float | None,
                    start: float, cautious_used: int) -> tuple[float | None, ErrorCode]:
        """Delay before the next attempt, or None to give up. Budget is spent last."""
        code = self.classifier(exc)
        self._registry.record_error(self.name, code)
        if not self._wants(exc, code, cautious_used):
            return None, code
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return None, code
        delay = self.backoff.delay(attempts, previous, self.rng)
        hint = getattr(exc, "retry_after", None)  # the server's Retry-After (HTTP) is a floor, not a cap
        if isinstance(hint, (int, float)) and hint > delay:
            delay = float(hint)
        if self.max_elapsed is not None and (self.clock() - start) + delay > self.max_elapsed:
            log.debug("retry %r: next delay %.3gs would pass max_elapsed; giving up", self.name, delay)
            return None, code
        if not self._budget.try_spend():
            log.debug("retry %r: retry budget exhausted; giving up", self.name)
            return None, code
        if self.before_sleep is not None:
            self.before_sleep(attempts, delay, exc)
        return delay, code

    def _finish(self, ok: bool, attempts: int) -> None:
        if ok:
            kind = RetryOutcome.SUCCESSFUL_WITH_RETRY
        else:
            kind = RetryOutcome.FAILED_WITH_RETRY if attempts > 1 else RetryOutcome.FAILED_WITHOUT_RETRY
        self._counter.record(kind)

    # ---------------------------------------------------------------- sync
    def retry(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)``, retrying per this policy; re-raise the last error."""
        self._budget.deposit()
        start = self.clock() if self.max_elapsed is not None else 0.0
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            first = exc
        else:
            self._counter.succeeded_first_try()
            return result
        return self._retry_loop(fn, args, kwargs, first, start)

    def _retry_loop(self, fn: Callable[..., T], args: tuple, kwargs: dict,
                    exc: Exception, start: float) -> T:
        attempts, previous, cautious_used = 1, None, 0
        while True:
            delay, code = self._next_delay(exc, attempts, previous, start, cautious_used)
            if delay is None:
                self._finish(False, attempts)
                raise exc
            cautious_used += code.cautious
            log.debug("retry %r: attempt %d failed (%s); sleeping %.3gs", self.name, attempts, code.value, delay)
            self.sleep(delay)
            previous = delay
            attempts += 1
            try:
                result = fn(*args, **kwargs)
            except Exception as err:
                exc = err
                continue
            self._finish(True, attempts)
            return result

    # ---------------------------------------------------------------- async
    async def retry_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)``, retrying per this policy; re-raise the last error."""
        self._budget.deposit()
        start = self.clock() if self.max_elapsed is not None else 0.0
        attempts, previous, cautious_used = 0, None, 0
        while True:
            attempts += 1
            try:
                result = await fn(*args, **kwargs)
            except Exception as err:
                exc = err
            else:
                if attempts == 1:
                    self._counter.succeeded_first_try()
                else:
                    self._finish(True, attempts)
                return result
            delay, code = self._next_delay(exc, attempts, previous, start, cautious_used)
            if delay is None:
                self._finish(False, attempts)
                raise exc
            cautious_used += code.cautious
            log.debug("retry %r: attempt %d failed (%s); sleeping %.3gs", self.name, attempts, code.value, delay)
            await self.async_sleep(delay)
            previous = delay

    # ---------------------------------------------------------------- decorator
    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a sync or async function with this policy."""
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.retry_async(fn, *args, **kwargs)
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.retry(fn, *args, **kwargs)
        return wrapper
