"""The project's Notifier: ExamplePay (HMAC) as "shop", the Alipay sandbox vector's account as
"sandbox", the echo provider as "echo", and one sync subscriber that records every dispatch. Its
body deadline is 2 s, so the tests of slow and stalled uploads take seconds, not the default 10."""

from __future__ import annotations

import threading
import time

from _alipay_keys import VECTOR_APP_ID, vector_key
from _echo_provider import EchoProvider
from conftest import APP_ID, SECRET

from paynotify import Notifier, PaymentResult

SLOW_SECONDS = 0.5
"""How long the subscriber holds an order named slow-*, so duplicates arrive while it is in flight."""

BODY_TIMEOUT = 2.0
notifier = Notifier("memory://", body_timeout=BODY_TIMEOUT)
notifier.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
notifier.add_account("sandbox", "alipay", app_id=VECTOR_APP_ID, alipay_public_key=vector_key())
notifier.add_account("echo", EchoProvider())  # answers with the bytes it was handed
DELIVERED: list[PaymentResult] = []
_lock = threading.Lock()


@notifier.subscribe
def record(result: PaymentResult) -> None:  # sync: paynotify runs it in a worker thread
    if result.order_id.startswith("slow-"):
        time.sleep(SLOW_SECONDS)
    with _lock:
        DELIVERED.append(result)
