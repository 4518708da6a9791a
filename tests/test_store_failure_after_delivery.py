"""One policy when the store fails after delivery (the subscribers ran, then `complete` fails), the
same on every path: logged at ERROR with the event id, the event handed back (released inline,
pending and due now when queued), and the caller told in its own terms: the provider its own
failure reply (so it resends), the dispatcher nothing raised, `redeliver` a `StoreError`.

The store is a real one (memory, SQLite) whose `complete` fails until healed; the notifications are
genuinely signed ExamplePay ones."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from conftest import APP_ID, SECRET, example_notify
from test_delivery import request

from paynotify import (
    Attempt,
    EventState,
    MemoryStore,
    Notifier,
    PaymentResult,
    SQLiteStore,
    Store,
    StoreError,
)
from paynotify._dispatcher import Dispatcher

HANDED_BACK = "delivered, but the store could not record it"


class CompleteFails:
    """Mixed into a real store: `complete` raises until `healed`."""

    healed = False

    async def complete(
        self, event_id: str, token: str, *, done: Sequence[str] = (), attempt: Attempt | None = None
    ) -> None:
        if not self.healed:
            raise StoreError("database is locked")
        await super().complete(event_id, token, done=done, attempt=attempt)  # type: ignore[misc]


class MemoryCompleteFails(CompleteFails, MemoryStore):
    pass


class SQLiteCompleteFails(CompleteFails, SQLiteStore):
    pass


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryCompleteFails()
    return SQLiteCompleteFails(f"sqlite:///{tmp_path / 'events.db'}")


def heal(store: Store) -> None:
    assert isinstance(store, CompleteFails)
    store.healed = True


def notifier(store: Store, calls: list[str], **options: object) -> Notifier:
    n = Notifier(store, **options)  # type: ignore[arg-type]
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    n.subscribe(lambda r: calls.append("ledger"), name="ledger")  # recorded done on its own
    n.subscribe(lambda r: calls.append("mailer"), name="mailer")  # the last: recorded by complete
    return n


def errors_naming(caplog: pytest.LogCaptureFixture, event_id: str) -> list[str]:
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    return [m for m in errors if event_id in m and "could not record it done" in m]


async def only_event(store: Store) -> tuple[str, EventState, str | None, frozenset[str]]:
    (event,) = await store.find()
    return event.event_id, event.state, event.last_error, event.done_subscribers


async def test_inline_the_provider_gets_its_failure_reply_and_its_resend_finishes_it(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    n = notifier(store, calls)
    async with n, httpx.AsyncClient(transport=httpx.ASGITransport(app=n.asgi()), base_url="http://t") as http:
        headers, body = example_notify("o-1")
        with caplog.at_level(logging.ERROR, logger="paynotify"):
            reply = await http.post("/shop/notify", content=body, headers=headers)
        # ExamplePay's own nack (400 RETRY), not a 500 from the door: the provider resends.
        assert (reply.status_code, reply.content) == (400, b"RETRY")
        event_id, state, error, done = await only_event(store)
        assert (state, error, done) == (EventState.RELEASED, HANDED_BACK, frozenset({"ledger"}))
        assert len(errors_naming(caplog, event_id)) == 1
        heal(store)
        resent = await http.post("/shop/notify", content=body, headers=headers)
        assert (resent.status_code, resent.content) == (200, b"OK")
    assert calls == ["ledger", "mailer", "mailer"]  # at least once: the unrecorded one again
    assert (await only_event(store))[1:] == (EventState.DONE, None, frozenset({"ledger", "mailer"}))


async def test_queued_the_dispatcher_hands_it_back_due_now_and_raises_nothing(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    n = notifier(store, calls, delivery="queued", dispatcher=False)
    async with n:
        assert (await n.handle("shop", request(example_notify("o-1")))).body == b"OK"
        dispatcher = Dispatcher(n.store, n.pipeline.deliver_lease, n.options)
        with caplog.at_level(logging.ERROR, logger="paynotify"):
            assert await dispatcher.run_once() == 1  # nothing raised into the dispatcher
        event_id, state, error, done = await only_event(store)
        assert (state, error, done) == (EventState.PENDING, HANDED_BACK, frozenset({"ledger"}))
        assert len(errors_naming(caplog, event_id)) == 1
        assert not [r for r in caplog.records if "could not settle" in r.getMessage()]
        heal(store)
        assert await dispatcher.run_once() == 1  # due now: taken at once, not after the lease
    assert calls == ["ledger", "mailer", "mailer"]
    assert (await only_event(store))[1:] == (EventState.DONE, None, frozenset({"ledger", "mailer"}))


async def test_redeliver_raises_a_store_error_and_leaves_it_handed_back(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    n = notifier(store, calls)
    async with n:
        assert (await n.handle("shop", request(example_notify("o-1")))).body == b"RETRY"
        event_id = (await only_event(store))[0]
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="paynotify"), pytest.raises(StoreError, match=HANDED_BACK):
            await n.redeliver(event_id)
        assert (await only_event(store))[1:3] == (EventState.RELEASED, HANDED_BACK)
        assert len(errors_naming(caplog, event_id)) == 1
        heal(store)
        assert await n.redeliver(event_id)
    assert calls == ["ledger", "mailer", "mailer", "mailer"]
    assert (await only_event(store))[1] is EventState.DONE


async def test_a_failed_subscriber_is_not_this_policy(store: Store) -> None:
    # The control: a subscriber that fails is a delivery failure (nack, released with its error),
    # and the store is never asked to complete.
    n = Notifier(store)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)

    @n.subscribe
    def ledger(result: PaymentResult) -> None:
        raise RuntimeError("ledger down")

    async with n:
        assert (await n.handle("shop", request(example_notify("o-1")))).body == b"RETRY"
        _, state, error, _ = await only_event(store)
    assert state is EventState.RELEASED
    assert error is not None
    assert "RuntimeError: ledger down" in error
