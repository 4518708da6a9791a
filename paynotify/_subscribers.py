"""Subscribers and hooks: sync or async callables, called the same way."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread

from paynotify._result import Kind, PaymentResult, Status

__all__ = ["Subscriber", "call_maybe_async", "default_name", "normalize_filter"]

E = TypeVar("E", Kind, Status)


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Await an async callable; run a sync one in a worker thread so it cannot stall the event loop."""
    if is_async_callable(fn):
        return await fn(*args)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))


def is_async_callable(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def normalize_filter(value: E | str | Iterable[E | str] | None, enum: type[E]) -> frozenset[E] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str | enum) else list(value)
    try:
        return frozenset(enum(v) for v in items)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ValueError(f"unknown {enum.__name__.lower()} in {value!r}; use: {allowed}") from None


def default_name(fn: Callable[..., Any]) -> str:
    """A name that stays the same across restarts and processes: the store records, per event,
    which subscribers (by name) already succeeded."""
    module = getattr(fn, "__module__", None) or type(fn).__module__
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}"


@dataclass(frozen=True, slots=True)
class Subscriber:
    fn: Callable[[PaymentResult], Any | Awaitable[Any]]
    name: str
    kinds: frozenset[Kind] | None = None
    statuses: frozenset[Status] | None = None
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        # Decided once: inspecting the callable on every notification costs more than calling it.
        object.__setattr__(self, "is_async", is_async_callable(self.fn))

    def __call__(self, result: PaymentResult) -> Awaitable[Any]:
        """The call to await: the subscriber's own coroutine, or a sync one's run in a worker thread."""
        if self.is_async:
            return self.fn(result)
        return anyio.to_thread.run_sync(self.fn, result)

    def wants(self, result: PaymentResult) -> bool:
        return (self.kinds is None or result.kind in self.kinds) and (
            self.statuses is None or result.status in self.statuses
        )
