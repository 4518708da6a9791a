"""Subscribers the server processes of tests/test_multiprocess.py import (through PYTHONPATH).

Every call appends one line `event_id subscriber pid outcome` to the file named by PAYNOTIFY_MP_RECORD,
with one O_APPEND write and an fsync, so the test can count calls per (subscriber, event) across
processes, including the calls of a process it killed: a line is written before the subscriber
returns, as a real side effect would be, so a process killed right after it leaves a call the store
never heard of.

- `ship` records its call, then lingers for PAYNOTIFY_MP_LINGER seconds (default 0): the window in
  which a SIGKILL leaves a side effect without its completion record.
- `crm` fails the first attempt on a deterministic ~10% of the events (`crm_fails_first`): the first
  attempt is whoever creates `<PAYNOTIFY_MP_MARKERS>/<event_id>` (O_EXCL, so across processes too).
"""

from __future__ import annotations

import hashlib
import os
import time

from paynotify import PaymentResult

__all__ = ["crm", "crm_fails_first", "parse_record", "ship"]

OK = "ok"
FAILED = "failed"


def crm_fails_first(event_id: str) -> bool:
    """Whether `crm` fails the first attempt on this event (about one event in ten)."""
    return hashlib.sha256(event_id.encode()).digest()[0] % 10 == 0


def _record(result: PaymentResult, subscriber: str, outcome: str) -> None:
    line = f"{result.event_id} {subscriber} {os.getpid()} {outcome}\n".encode()
    fd = os.open(os.environ["PAYNOTIFY_MP_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one short O_APPEND write: never interleaved with another process's
        os.fsync(fd)
    finally:
        os.close(fd)


def _first_attempt(event_id: str) -> bool:
    try:
        fd = os.open(
            os.path.join(os.environ["PAYNOTIFY_MP_MARKERS"], event_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL
        )
    except FileExistsError:
        return False
    os.close(fd)
    return True


def ship(result: PaymentResult) -> None:
    _record(result, "ship", OK)
    linger = float(os.environ.get("PAYNOTIFY_MP_LINGER", "0"))
    if linger > 0:
        time.sleep(linger)


def crm(result: PaymentResult) -> None:
    if crm_fails_first(result.event_id) and _first_attempt(result.event_id):
        _record(result, "crm", FAILED)
        raise RuntimeError(f"crm fails the first attempt on {result.event_id} on purpose")
    _record(result, "crm", OK)


def parse_record(text: str) -> list[tuple[str, str, int, str]]:
    """The calls of a record file: (event_id, subscriber, pid, outcome), in the order written."""
    calls = []
    for line in text.splitlines():
        event_id, subscriber, pid, outcome = line.split()
        calls.append((event_id, subscriber, int(pid), outcome))
    return calls
