"""Subscribers that server and worker processes import in the operations tests: each call appends
`event_id subscriber pid` to the file named by PAYNOTIFY_TEST_RECORD; `flaky` fails while the file
named by PAYNOTIFY_TEST_FAIL exists."""

from __future__ import annotations

import os

from paynotify import PaymentResult


def _record(result: PaymentResult, name: str) -> None:
    with open(os.environ["PAYNOTIFY_TEST_RECORD"], "a", encoding="utf-8") as f:
        f.write(f"{result.event_id} {name} {os.getpid()}\n")


def ship(result: PaymentResult) -> None:
    _record(result, "ship")


def flaky(result: PaymentResult) -> None:
    if os.path.exists(os.environ.get("PAYNOTIFY_TEST_FAIL", "/nonexistent")):
        raise RuntimeError("flaky subscriber is failing on purpose")
    _record(result, "flaky")
