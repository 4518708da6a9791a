"""The pipeline and the dispatcher record every delivery attempt in the event's history."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import APP_ID, SECRET, example_notify

from paynotify import CheckFailed, EventState, InboundRequest, Notifier, PaymentResult, make_event_id
from paynotify._stores.history import instance_id


def request() -> InboundRequest:
    headers, body = example_notify()
    return InboundRequest("POST", "notify", headers, b"", body)


EVENT_ID = make_event_id("shop", "payment", "txn-order-1", None, "paid")


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'events.db'}"


def make(store_url: str, **options: Any) -> Notifier:
    n = Notifier(store_url, **options)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    return n


async def test_a_failure_then_a_success_leave_two_attempts(store_url: str) -> None:
    n = make(store_url)
    failures = [RuntimeError("crm down")]

    def crm(result: PaymentResult) -> None:
        if failures:
            raise failures.pop()

    n.subscribe(crm, name="crm")

    assert (await n.handle("shop", request())).body == b"RETRY"
    assert (await n.handle("shop", request())).body == b"OK"
    delivered, failed = await n.store.history.attempts(EVENT_ID)
    assert (delivered.outcome, delivered.error) == ("delivered", None)
    assert (failed.outcome, failed.error) == ("failed", "crm: RuntimeError: crm down")
    assert failed.finished_at >= failed.started_at
    assert delivered.started_at >= failed.finished_at
    assert {delivered.instance, failed.instance} == {instance_id()}
    assert delivered.operator is None
    await n.aclose()


async def test_a_duplicate_adds_no_attempt(store_url: str) -> None:
    n = make(store_url)
    n.subscribe(lambda result: None, name="noop")
    assert (await n.handle("shop", request())).body == b"OK"
    assert (await n.handle("shop", request())).body == b"OK"
    assert [a.outcome for a in await n.store.history.attempts(EVENT_ID)] == ["delivered"]
    await n.aclose()


async def test_queued_attempts_end_failed_then_dead(store_url: str) -> None:
    n = make(store_url, delivery="queued", backoff_seconds=0.01, max_attempts=2)

    @n.subscribe
    def fulfil(result: PaymentResult) -> None:
        raise RuntimeError("warehouse offline")

    async with n:
        await n.handle("shop", request())
        deadline = time.monotonic() + 5
        while (event := await n.store.get(EVENT_ID)) is None or event.state is not EventState.DEAD:
            assert time.monotonic() < deadline, "timed out waiting for the dead letter"
            await asyncio.sleep(0.01)
    outcomes = [a.outcome for a in await n.store.history.attempts(EVENT_ID)]
    assert outcomes == ["dead", "failed"]
    await n.aclose()


async def test_a_rejection_by_a_check_is_an_attempt(store_url: str) -> None:
    n = make(store_url)

    @n.check
    def amount_matches(result: PaymentResult) -> bool:
        raise CheckFailed("amount 88.88 is not the order's 10.00")

    assert (await n.handle("shop", request())).body == b"OK"
    (rejected,) = await n.store.history.attempts(EVENT_ID)
    assert rejected.outcome == "rejected"
    assert "amount 88.88" in (rejected.error or "")
    await n.aclose()
