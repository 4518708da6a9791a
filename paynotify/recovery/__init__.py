"""Asking the provider instead of waiting for it: the provider API's transport and `Notifier.query`.

    answer = await notifier.query("shop", "order-1")          # asks, verifies, delivers once
    answer.result, answer.outcome                              # what the provider said, what was done

Above the pipeline, on the public names only; `Notifier` imports it when first asked.
"""

from paynotify.recovery._emulators import EmulatorTransport
from paynotify.recovery._query import ask, query_api
from paynotify.recovery._send import MAX_ANSWER_BYTES, HttpSend
from paynotify.recovery._upkeep import Upkeeps

__all__ = ["MAX_ANSWER_BYTES", "EmulatorTransport", "HttpSend", "Upkeeps", "ask", "query_api"]
