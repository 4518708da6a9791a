"""Exactly once per endpoint across a SIGKILL of the sender.

A real `paynotify worker` (queued delivery, two `[[webhooks]]` endpoints, SQLite) delivers 60 events
from its store through each endpoint's outbox to sinks in this process; one endpoint answers 500
throughout and must hold back nothing of the other's. After 20 requests the sink
stops answering; the worker is killed with SIGKILL while it holds those sends, and started again.
Every event must reach the sink (the receiver de-duplicates on webhook-id), each be recorded done
exactly once in the store and in the outbox, and only the sends caught by the kill come twice.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import sys
from collections import Counter
from pathlib import Path

from _webhook_sink import OK, Answer, Received, sink, until
from standardwebhooks.webhooks import Webhook
from test_webhooks import result

from paynotify import EventState, open_store
from paynotify.publishers import outbox_url

EVENTS = 60
ANSWERED_BEFORE_THE_KILL = 20
CONCURRENCY = 4


async def test_a_killed_sender_loses_nothing_and_repeats_only_what_it_held(tmp_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    holding = asyncio.Event()  # set: new requests get no answer (until the kill)
    released = asyncio.Event()

    answered = 0

    def script(received: Received) -> Answer:
        nonlocal answered
        answered += 1
        if answered > ANSWERED_BEFORE_THE_KILL and not released.is_set():
            holding.set()
            return Answer(hang=True)
        return OK

    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    async with sink(script) as s, sink(Answer(status=500)) as down:
        config = tmp_path / "paynotify.toml"
        config.write_text(
            f'store = "{store_url}"\ndelivery = "queued"\nlease_seconds = 2\nbackoff_seconds = 0.1\n'
            '[accounts.shop]\nprovider = "examplepay"\napp_id = "app-1"\nsecret_env = "SHOP_SECRET"\n'
            f'[[webhooks]]\nname = "orders"\nurl = "{s.url}"\nsecret_env = "HOOK_SECRET"\n'
            f"timeout = 1\nlease_seconds = 2\nconcurrency = {CONCURRENCY}\nbackoff_seconds = 0.05\n"
            f'[[webhooks]]\nname = "down"\nurl = "{down.url}"\nsecret_env = "HOOK_SECRET"\n'
            "timeout = 1\nlease_seconds = 2\nbackoff_seconds = 0.05\ncircuit_reset_seconds = 0.2\n"
        )
        store = open_store(store_url)
        try:
            for n in range(EVENTS):
                assert await store.enqueue(result(n))
        finally:
            await store.close()
        env = {**os.environ, "SHOP_SECRET": "example-secret-for-tests", "HOOK_SECRET": secret}

        async def worker() -> asyncio.subprocess.Process:
            log = os.open(tmp_path / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                return await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "paynotify", "worker", "--config", str(config), env=env,
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=log,
                )  # fmt: skip
            finally:
                os.close(log)

        first = await worker()
        try:
            async with asyncio.timeout(30):
                await holding.wait()
                await s.wait_for(lambda s: len(s.received) >= ANSWERED_BEFORE_THE_KILL + 1)
            first.send_signal(signal.SIGKILL)
            await first.wait()
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
        before_kill = Counter(s.ids())
        released.set()
        second = await worker()
        try:
            await s.wait_for(lambda s: set(s.ids()) >= {result(n).event_id for n in range(EVENTS)}, within=60)
            store, outbox = open_store(store_url), open_store(outbox_url(store_url, "orders"))
            down_outbox = open_store(outbox_url(store_url, "down"))
            try:

                async def all_done() -> bool:
                    counts = [await s.count() for s in (outbox, store)]
                    return all(c.get(EventState.DONE, 0) >= EVENTS for c in counts)

                await until(all_done, within=30)
                assert await outbox.count() == {EventState.DONE: EVENTS}
                assert await store.count() == {EventState.DONE: EVENTS}
                # The endpoint answering 500 throughout has every event still to send, none lost.
                waiting = await down_outbox.count()
                assert EventState.DONE not in waiting
                assert sum(waiting.values()) == EVENTS
            finally:
                await store.close()
                await outbox.close()
                await down_outbox.close()
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()

    for received in s.received:
        Webhook(secret).verify(received.body, received.headers, json_parse=False)
    counts = Counter(s.ids())
    assert set(counts) == {result(n).event_id for n in range(EVENTS)}
    repeated = {event_id for event_id, count in counts.items() if count > 1}
    # Only sends the kill interrupted (held unanswered, or answered but not yet recorded) repeat.
    assert repeated <= set(before_kill)
    assert 1 <= len(repeated) <= CONCURRENCY + 1
    assert max(counts.values()) == 2
