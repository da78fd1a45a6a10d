"""Breaker + retry in one line: a decorator and a context manager, for sync and asyncio code.

    @resilient(get_breaker("billing"), RetryPolicy(name="billing", max_attempts=3))
    def charge(order): ...

    @resilient(devices, retry, key=lambda device_id, *_: device_id)   # one breaker per device
    async def read(device_id: str) -> dict: ...

    with guard(breaker):          # or: async with guard(devices, "d1"):
        do_it()

Each attempt passes the breaker, so an open breaker stops the retries at once (CircuitOpenError
is never retried). A ``with`` block cannot run its body twice, so ``guard`` is breaker-only.
"""
from __future__ import annotations

import functools
import inspect
from types import TracebackType
from typing import Any, Callable, TypeVar

from .breaker import CircuitBreaker, CircuitState
from .keyed import KeyedBreakers
from .retry import RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])
Breakers = CircuitBreaker | KeyedBreakers


def _breaker_for(breaker: Breakers, key: Callable[..., str] | None, args: tuple, kwargs: dict) -> CircuitBreaker:
    if isinstance(breaker, KeyedBreakers):
        return breaker.get(key(*args, **kwargs))  # type: ignore[misc]  # checked in resilient()
    return breaker


def resilient(breaker: Breakers | None = None, retry: RetryPolicy | None = None, *,
              key: Callable[..., str] | None = None) -> Callable[[F], F]:
    """Decorate a sync or async function with a breaker (or keyed set, picked by ``key(*args)``) and a retry policy."""
    if isinstance(breaker, KeyedBreakers) and key is None:
        raise TypeError(f"resilient(): keyed breakers {breaker.name!r} need key=, a function of the call's arguments")
    if breaker is None and retry is None:
        raise TypeError("resilient(): give a breaker, a retry policy or both")

    def decorate(fn: F) -> F:
        # the call path is chosen here, once, so a call pays for nothing it does not use
        if retry is None and isinstance(breaker, CircuitBreaker):
            return breaker(fn)  # type: ignore[return-value]
        if breaker is None:
            return retry(fn)  # type: ignore[misc]
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                cb = _breaker_for(breaker, key, args, kwargs)
                if retry is None:
                    return await cb.call_async(fn, *args, **kwargs)
                return await retry.retry_async(cb.call_async, fn, *args, **kwargs)
            return async_wrapper  # type: ignore[return-value]

        if isinstance(breaker, CircuitBreaker):
            call, retry_call = breaker.call, retry.retry  # type: ignore[union-attr]

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return retry_call(call, fn, *args, **kwargs)
            return wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def keyed_wrapper(*args: Any, **kwargs: Any) -> Any:
            cb = _breaker_for(breaker, key, args, kwargs)
            if retry is None:
                return cb.call(fn, *args, **kwargs)
            return retry.retry(cb.call, fn, *args, **kwargs)
        return keyed_wrapper  # type: ignore[return-value]
    return decorate


class guard:  # noqa: N801 - used like a function: `with guard(breaker):`
    """Context manager (sync and async) running its block under a breaker's permit.

    Entering raises CircuitOpenError when the breaker refuses; leaving records success, or the
    block's exception as a failure (excluded errors and cancellation count as ignored).
    """

    __slots__ = ("_breaker", "_permit")

    def __init__(self, breaker: Breakers, key: str | None = None) -> None:
        if isinstance(breaker, KeyedBreakers):
            if key is None:
                raise TypeError(f"guard(): keyed breakers {breaker.name!r} need a key")
            breaker = breaker.get(key)
        self._breaker: CircuitBreaker = breaker
        self._permit: tuple[CircuitState, int] | None = None

    def __enter__(self) -> CircuitBreaker:
        self._permit = self._breaker.acquire_permission()
        return self._breaker

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self._breaker.on_success(self._permit)
        else:
            self._breaker.on_error(exc, self._permit)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)
