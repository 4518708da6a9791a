"""Asking the provider instead of waiting for it: the provider API's transport and `Notifier.query`.

    answer = await notifier.query("shop", "order-1")          # asks, verifies, delivers once
    answer.result, answer.outcome                              # what the provider said, what was done
    await notifier.expect("shop", "order-1", amount="88.88", until=timedelta(hours=24))
    Sweeper(notifier.store, notifier.query)                    # asks about the overdue ones

Above the pipeline, on the public names only; `Notifier` imports it when first asked.
"""

from paynotify.recovery._emulators import EmulatorTransport
from paynotify.recovery._expectations import close_delivered, expect, expectations_of
from paynotify.recovery._query import ask, query_api
from paynotify.recovery._send import MAX_ANSWER_BYTES, HttpSend
from paynotify.recovery._sweeper import (
    DEFAULT_SCHEDULE,
    HOURLY,
    Sweep,
    Sweeper,
    TokenBucket,
    notifier_sweeper,
)
from paynotify.recovery._upkeep import Upkeeps

__all__ = [
    "DEFAULT_SCHEDULE",
    "HOURLY",
    "MAX_ANSWER_BYTES",
    "EmulatorTransport",
    "HttpSend",
    "Sweep",
    "Sweeper",
    "TokenBucket",
    "Upkeeps",
    "ask",
    "close_delivered",
    "expect",
    "expectations_of",
    "notifier_sweeper",
    "query_api",
]
