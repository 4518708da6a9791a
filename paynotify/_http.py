"""Transport-neutral request and reply: the seam between the ASGI adapter and everything else."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["InboundRequest", "Reply"]


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """One HTTP delivery, exactly as received.

    `headers` has lower-case names. `query` and `body` are the raw bytes: providers verify on
    them, never on a framework's parsed copy.
    """

    method: str
    channel: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: bytes = b""
    body: bytes = b""
    client: object = None
    """The peer as the door's server gave it (ASGI `scope["client"]`, WSGI `REMOTE_ADDR`), kept
    as given: read (`paynotify._route.remote_address`) only when a request is refused."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the provider (or the buyer's browser, for a return) is sent back."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, text.encode(), "text/plain; charset=utf-8", headers or {})

    @classmethod
    def html(cls, html: str, status: int = 200) -> Reply:
        return cls(status, html.encode(), "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, url: str, status: int = 303) -> Reply:
        return cls(status, b"", None, {"location": url})
