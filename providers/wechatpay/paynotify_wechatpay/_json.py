"""JSON as WeChat Pay API v3 writes it, read strictly: the envelope and the decrypted resource.

A genuine signature says WeChat Pay sent the bytes, not that they are sane JSON. Python's json
module takes what WeChat Pay never sends and what breaks later stages: a duplicated key (the last
one silently wins, so two readers can see two values), a lone surrogate escape (`"\\ud800"`, a str
that cannot be encoded: it failed when stored), and nesting deep enough for a RecursionError
(which the pipeline could only answer with 500). Each is refused as MalformedNotification.

Cheap on the usual path: the depth is counted only when there are more than MAX_DEPTH brackets at
all, surrogates are looked for only when the text has a backslash and then a surrogate's
`\\ud8..`-`\\udf..` escape, and duplicates are seen by an object hook (a genuine notification has
about six objects).
"""

from __future__ import annotations

import json
import re
from typing import Any

from paynotify import MalformedNotification

__all__ = ["MAX_DEPTH", "loads"]

MAX_DEPTH = 32
"""Objects and arrays nested deeper than this are refused (WeChat Pay's go four or five deep)."""


class _Duplicate(Exception):
    # Not a ValueError: it must pass through the decoder's own error handling untouched.
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return value


def _constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# One decoder for every notification: json.loads with an option builds a new one per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)
# What a surrogate escape (\ud800-\udfff) starts with; also matches after an escaped backslash,
# which the exact check below then lets through.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# A JSON string (escapes included), or a bracket outside one.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
# The whitespace JSON allows around a value (json.decoder's WHITESPACE).
_SPACE = " \t\n\r"


def _many_brackets(text: str) -> bool:
    """More than MAX_DEPTH `{` and `[` in all: only then can the text nest too deep.

    Found one by one with str.find (memchr speed) rather than counted: str.count reads every
    character (~0.35 ns each, 0.7 us for an envelope, whose two brackets come out in ~0.3 us here).
    """
    seen = 0
    for bracket in "{[":
        at = text.find(bracket)
        while at != -1:
            seen += 1
            if seen > MAX_DEPTH:
                return True
            at = text.find(bracket, at + 1)
    return False


def _too_deep(text: str) -> bool:
    depth = 0
    for piece in _TOKENS.findall(text):
        if piece in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif piece in ("]", "}"):
            depth -= 1
    return False


def _decode(text: str) -> Any:
    """`_DECODER.decode(text)`: one JSON value with only whitespace around it, else ValueError.

    decode() finds the whitespace with two regex matches (~0.25 us each); str.strip finds the same
    and costs next to nothing when there is none, as in WeChat Pay's JSON. A value never ends in
    whitespace, so it ends where the stripped text does, or data follows it.
    """
    value, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip(_SPACE)))
    if end != len(text.rstrip(_SPACE)):
        raise ValueError("extra data after the JSON value")
    return value


def loads(text: str, what: str) -> Any:
    """`text` as JSON, or MalformedNotification naming `what` and the reason (never a value)."""
    if _many_brackets(text) and _too_deep(text):
        raise MalformedNotification(f"{what} nests deeper than {MAX_DEPTH} levels")
    try:
        value = _decode(text)
    except _Duplicate as exc:
        raise MalformedNotification(f"{what} has the key {exc.key[:40]!r} more than once") from None
    except (ValueError, RecursionError):
        raise MalformedNotification(f"{what} is not JSON") from None
    # A backslash is looked for first: a one-character search runs at memchr speed, while the
    # two-character one costs ~1 ns a character (0.75 us for an envelope with Chinese in it).
    if "\\" in text and "\\u" in text and _SURROGATE_ESCAPE.search(text):
        # Only an escape can make a lone surrogate (the text came from strict UTF-8), and Chinese
        # text escaped is no surrogate: this runs for emoji. The C encoder finds a lone one in any
        # string or key, escaped backslashes and valid pairs understood.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedNotification(f"{what} has a lone surrogate escape (\\ud800-\\udfff)") from None
    return value
