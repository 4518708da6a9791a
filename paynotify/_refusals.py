"""What the pipeline keeps of what it refuses, so that a sender's junk costs it little: WARNING
lines sampled per account and outcome, and a rejected record's id taken from the decoded content,
never from the bytes (a re-encoded copy of signed content still verifies, and must not be a row
of its own)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from paynotify._errors import (
    InvalidContent,
    MalformedNotification,
    NotANotification,
    NotificationError,
    VerificationError,
)
from paynotify._http import InboundRequest
from paynotify._observe import Outcome
from paynotify._pipeline_log import fields
from paynotify._provider import Account
from paynotify._result import make_event_id
from paynotify._route import remote_address
from paynotify._sampling import Sampler

__all__ = ["RecentRefusals", "RefusalLog", "RefusedRequest", "refused_outcome", "rejected_id"]

log = logging.getLogger("paynotify")


def rejected_id(account: str, exc: InvalidContent, body: bytes) -> str:
    """The id a refused verified content is recorded under: the digest of its decoded fields (in
    one canonical serialisation), so every byte-variant of one signed content is one record; the
    body's digest only when the provider handed no fields."""
    if exc.raw:
        # Empty fields left out: Alipay and WeChat Pay v2 sign without them, so `&x=` or `<x></x>`
        # under any name would keep the signature and make another record.
        present = {name: value for name, value in exc.raw.items() if value not in ("", None)}
        content = json.dumps(present, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(content.encode("ascii")).hexdigest()
    else:
        digest = hashlib.sha256(body).hexdigest()
    return make_event_id(account, "invalid", digest)


def refused_outcome(exc: MalformedNotification | VerificationError) -> Outcome:
    """The outcome a parse failure is counted under (on either channel)."""
    if isinstance(exc, NotANotification):
        return Outcome.NOT_A_NOTIFICATION  # never recorded: any buyer could add rows (issue 25)
    if isinstance(exc, InvalidContent):
        return Outcome.REJECTED_CONTENT
    return Outcome.MALFORMED if isinstance(exc, MalformedNotification) else Outcome.REFUSED_SIGNATURE


class RefusalLog:
    """The WARNING of each refused request: the first `limit` per account and outcome in each
    `window` seconds, then one line with how many were left out, once that window is over."""

    def __init__(self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.sampler: Sampler[tuple[str, str, str]] = Sampler(limit, window, clock)
        self.recent = RecentRefusals()
        """What the console's Refused page shows (every refusal, not a sample)."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def refused(
        self, account: Account[Any], outcome: Outcome, exc: NotificationError, request: InboundRequest
    ) -> None:
        self.recent.refused(account, request, outcome._value_, type(exc).__name__)
        key = (account.name, account.provider.name, outcome.value)
        if not self.sampler.admit(key):
            self._flush_later()
            return
        event_id = exc.event_id if isinstance(exc, InvalidContent) else None
        what = "verified " if isinstance(exc, InvalidContent) else ""
        log.warning("refused %s%s notification: %s", what, account.provider.name, exc,
                    extra=fields(account, outcome, event_id, cause=exc.message))  # fmt: skip

    def flush(self) -> None:
        """Log the counts of the windows that are over (a timer calls this a window after the first
        line left out)."""
        self._timer = None
        for (account, provider, outcome), count in self.sampler.expired():
            log.warning(
                "%d more refused %s requests (%s) on account %r in %.0f s were not logged",
                count, provider, outcome, account, self.sampler.window,
                extra={"account": account, "provider": provider, "outcome": outcome,
                       "cause": f"{count} not logged"},
            )  # fmt: skip
        if self.sampler.pending():
            self._flush_later()

    def _flush_later(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on a loop (the pipeline always is): nothing could wait for the window
        if self._timer is not None and self._timer_loop is loop and not loop.is_closed():
            return
        self._timer, self._timer_loop = loop.call_later(self.sampler.window, self.flush), loop


UNKNOWN_SHOWN = 64
"""An unknown account's name is kept cut to this many characters (it is the sender's text)."""


class RefusedRequest(NamedTuple):
    """One refused request, as the console's Refused page shows it: never a body, a header's value
    or the error's message (which may quote the body); those are in the sampled log line. (A named
    tuple: made in a quarter of a frozen dataclass's time, on the refusal path.)"""

    at: float
    """Unix seconds."""
    account: str
    """The account that refused it; for an unknown account, the name the request's path gave."""
    provider: str
    """The account's provider; `-` for an unknown account."""
    channel: str
    reason: str
    """The outcome it is counted under (`refused_signature`, `malformed`, `unknown_account`, ...)."""
    error: str
    """The refusal's type (`VerificationError`, `MalformedNotification`, ...)."""
    remote: str | None
    """The peer's address as the server saw it (behind a proxy, the proxy's, unless the server is
    told to trust its forwarded headers, e.g. uvicorn's --proxy-headers)."""


class RecentRefusals:
    """The last `per_account` refusals of each configured account, and of requests for accounts
    that do not exist the last `unknown` in one shared ring, so that inventing account names
    cannot grow memory; in this process's memory only (each serving process keeps its own, and a
    restart starts empty). At most `max_accounts` rings: past that, the shared one."""

    def __init__(
        self,
        per_account: int = 100,
        unknown: int = 100,
        *,
        max_accounts: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_account = per_account
        self.max_accounts = max_accounts
        self.clock = clock
        self._rings: dict[str, deque[RefusedRequest]] = {}
        self._unknown: deque[RefusedRequest] = deque(maxlen=unknown)

    def refused(self, account: Account[Any], request: InboundRequest, reason: str, error: str) -> None:
        """Keep a refusal by a configured account (`reason`: the outcome's value, or
        `unknown_channel`)."""
        channel = request.channel[:UNKNOWN_SHOWN]
        entry = RefusedRequest(self.clock(), account.name, account.provider.name, channel, reason, error,
                               remote_address(request.client))  # fmt: skip
        self._ring(account.name).append(entry)

    def unknown(self, name: str, request: InboundRequest) -> None:
        """Keep a request for an account no one configured."""
        channel, reason = request.channel[:UNKNOWN_SHOWN], Outcome.UNKNOWN_ACCOUNT.value
        entry = RefusedRequest(self.clock(), name[:UNKNOWN_SHOWN], "-", channel, reason, "UnknownAccount",
                               remote_address(request.client))  # fmt: skip
        self._unknown.append(entry)

    def at_door(
        self, account: Account[Any] | None, name: str, channel: str, reason: str, status: int, client: object
    ) -> None:
        """Keep a refusal its door made before the pipeline (`account`: None when none is `name`)."""
        provider = "-" if account is None else account.provider.name
        entry = RefusedRequest(self.clock(), name[:UNKNOWN_SHOWN], provider, channel[:UNKNOWN_SHOWN], reason,
                               f"HTTP {status}", remote_address(client))  # fmt: skip
        if account is None:
            self._unknown.append(entry)
        else:
            self._ring(account.name).append(entry)

    def _ring(self, name: str) -> deque[RefusedRequest]:
        ring = self._rings.get(name)
        if ring is None:
            if len(self._rings) >= self.max_accounts:
                return self._unknown
            ring = self._rings[name] = deque(maxlen=self.per_account)
        return ring

    def of(self, account: str) -> list[RefusedRequest]:
        """An account's refusals, newest first."""
        return list(reversed(self._rings.get(account, ())))

    def of_unknown(self) -> list[RefusedRequest]:
        """The requests for unknown accounts, newest first."""
        return list(reversed(self._unknown))

    def accounts(self) -> list[str]:
        """The accounts with a refusal kept, by name."""
        return sorted(name for name, ring in self._rings.items() if ring)

    def __len__(self) -> int:
        return len(self._unknown) + sum(len(ring) for ring in self._rings.values())
