"""One process of tests/test_query_race.py: on a shared store, either query each order of a WeChat
Pay v2 emulator or hand the Notifier each order's notification, and record every delivery.

    python _race_worker.py STORE_URL query|notify ORDERS RECORD_FILE BARRIER_DIR

Both processes build the same emulator (one throwaway API key and a fixed clock, from the
environment), so a query answer here and a notification there describe one payment: one event id.
Each delivery appends `event_id pid way` to RECORD_FILE (one O_APPEND write). Each process, once
its store is open, leaves its name in BARRIER_DIR and starts when the other's is there too.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from paynotify_wechatpay.testing import WeChatPayV2Emulator

from paynotify import InboundRequest, Notifier, PaymentResult
from paynotify.recovery import EmulatorTransport

CLOCK = 1_765_000_000.0


async def main(url: str, way: str, orders: int, record: str, barrier: Path) -> None:
    emu = WeChatPayV2Emulator(api_key=os.environ["PAYNOTIFY_RACE_KEY"], clock=lambda: CLOCK)
    names = [f"race-{i}" for i in range(orders)]
    for name in names:
        emu.pay(name)
    notifier = Notifier(url, api_transport=EmulatorTransport({"wechatpay-v2.emulator": emu}))
    notifier.add_account("shop", "wechatpay-v2", **emu.account_settings())

    def delivered(result: PaymentResult) -> None:
        fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{result.event_id} {os.getpid()} {result.source.value}\n".encode())
        finally:
            os.close(fd)

    notifier.subscribe(delivered)
    async with notifier:
        (barrier / way).touch()
        deadline = time.monotonic() + 60
        while len(list(barrier.iterdir())) < 2:  # noqa: ASYNC240 - a test barrier, polled
            if time.monotonic() > deadline:
                raise SystemExit(f"{way}: the other process never got ready")
            await asyncio.sleep(0.01)
        # Opposite orders: the two meet in the middle, each winning the orders on its side and
        # racing the other on the ones around the meeting point.
        for name in names if way == "query" else reversed(names):
            for _ in range(20):  # the provider's resend, for an answer "in flight elsewhere"
                if way == "query":
                    answer = await notifier.query("shop", name)
                    done = answer.outcome is not None and answer.outcome.value in ("delivered", "duplicate")
                else:
                    body = emu.notification(order=name)
                    request = InboundRequest("POST", "notify", {"content-type": "text/xml"}, body=body)
                    done = b"SUCCESS" in (await notifier.handle("shop", request)).body
                if done:
                    break
                await asyncio.sleep(0.05)
            else:
                raise SystemExit(f"{way}: {name} never settled")
            await asyncio.sleep(0.005)  # paced, so the two overlap across many orders


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])))
