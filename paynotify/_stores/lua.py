"""The state machine's rows as Lua, for the Redis store's scripts."""

from __future__ import annotations

from collections.abc import Iterable

from paynotify._stores.transitions import EventState, Transition

__all__ = ["lua_set", "lua_sources"]


def lua_set(states: Iterable[EventState]) -> str:
    """The states as a Lua table used as a set: `{pending=true, released=true}`."""
    return "{" + ", ".join(f"{s.value}=true" for s in sorted(states)) + "}"


def lua_sources(transition: Transition) -> str:
    """A Lua function `function(st, expired)`: whether an event in state `st` (its lease run out
    if `expired`) may be taken by `transition`."""
    expired = " or (st == 'in_flight' and expired)" if transition.takes_expired else ""
    # The set is built once, when the script loads, and closed over.
    body = f"return function(st, expired) return sources[st] == true{expired} end"
    return f"(function(sources) {body} end)({lua_set(transition.sources)})"
