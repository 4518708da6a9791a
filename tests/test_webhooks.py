"""Webhooks (paynotify.publishers.WebhookPublisher) against sinks of the tests' own on 127.0.0.1.

Signatures are checked with the `standardwebhooks` library itself, never with paynotify's code.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from _store_backends import BACKENDS, drop, isolated_url
from _webhook_sink import Answer, Received, Sink, sink, until
from conftest import example_notify, post_example
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import paynotify.webhooks
from paynotify import EventState, Kind, Notifier, PaymentResult
from paynotify._errors import ConfigurationError
from paynotify.publishers import (
    EndpointState,
    PublishError,
    RetrySchedule,
    WebhookPublisher,
    decode_message,
    outbox_url,
)
from paynotify.publishers._webhook_state import CircuitBreaker

FAST = RetrySchedule(backoff_seconds=0.01, max_backoff_seconds=0.02, max_attempts=4)


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


SECRET = whsec()


def result(n: int = 1, **fields: object) -> PaymentResult:
    values: dict[str, object] = {
        "provider": "alipay",
        "account": "shop",
        "kind": "payment",
        "status": "succeeded",
        "provider_status": "TRADE_SUCCESS",
        "order_id": f"order-{n}",
        "amount": Decimal("88.80"),
        "event_id": f"{n:032x}",
        **fields,
    }
    return PaymentResult.model_validate(values)


def verified(received: Received, secret: str = SECRET) -> PaymentResult:
    """The reference library's verdict on what the sink received, then the body decoded."""
    Webhook(secret).verify(received.body, received.headers, json_parse=False)
    return decode_message(received.body)


@pytest.fixture
async def ok_sink() -> AsyncIterator[Sink]:
    async with sink() as s:
        yield s


def state(holder: WebhookPublisher | CircuitBreaker) -> EndpointState:
    """Read afresh (mypy would keep a property narrowed from the last assert)."""
    return holder.state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- one POST ----------------------------------------------------------------------------------


async def test_a_2xx_delivers_the_message_signed_with_webhook_id_the_event_id(ok_sink: Sink) -> None:
    hook = WebhookPublisher(
        ok_sink.url, name="orders", secret=SECRET, delivery="inline", headers={"x-env": "t"}
    )
    try:
        await hook(result(7))
    finally:
        await hook.aclose()
    [received] = ok_sink.received
    assert verified(received) == result(7)
    assert received.headers["webhook-id"] == result(7).event_id
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-env"] == "t"
    assert json.loads(received.body)["schema_version"] == 1
    assert state(hook) is EndpointState.HEALTHY
    assert (hook.stats.attempts, hook.stats.failures) == (1, 0)
    assert hook.stats.recent[-1].status_code == 204


async def test_another_secret_does_not_verify(ok_sink: Sink) -> None:
    hook = WebhookPublisher(ok_sink.url, name="orders", secret=SECRET, delivery="inline")
    try:
        await hook(result())
    finally:
        await hook.aclose()
    with pytest.raises(WebhookVerificationError):
        verified(ok_sink.received[0], secret=whsec())
    tampered = Received(ok_sink.received[0].headers, ok_sink.received[0].body.replace(b"88.80", b"88.90"))
    with pytest.raises(WebhookVerificationError):
        verified(tampered)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(status=500, body=b"database down"), "HTTP 500: database down"),
        (Answer(status=404), "HTTP 404"),
        (Answer(hang=True), "no answer within 0.3 s"),
        (Answer(trickle=0.05), "no answer within 0.3 s"),  # a 200 whose body never ends in time
    ],
    ids=["5xx", "4xx", "timeout", "slow-body"],
)
async def test_anything_but_a_timely_2xx_fails_the_attempt(answer: Answer, error: str) -> None:
    async with sink(answer) as s:
        hook = WebhookPublisher(s.url, name="orders", secret=SECRET, delivery="inline", timeout=0.3)
        try:
            with pytest.raises(PublishError, match=error):
                await hook(result())
        finally:
            await hook.aclose()
    assert len(s.received) == 1
    assert hook.stats.recent[-1].error == error
    assert state(hook) is EndpointState.FAILING


async def test_connection_refused_fails_the_attempt() -> None:
    hook = WebhookPublisher(f"http://127.0.0.1:{free_port()}/", name="gone", secret=SECRET, delivery="inline")
    try:
        with pytest.raises(PublishError, match="ConnectError"):
            await hook(result())
    finally:
        await hook.aclose()
    assert hook.stats.recent[-1].status_code is None


async def test_a_redirect_is_an_answer_never_followed() -> None:
    async with sink() as elsewhere, sink(Answer(status=302, headers={"location": "placeholder"})) as s:
        s.script = Answer(status=302, headers={"location": elsewhere.url})
        hook = WebhookPublisher(s.url, name="orders", secret=SECRET, delivery="inline")
        try:
            with pytest.raises(PublishError, match="HTTP 302"):
                await hook(result())
        finally:
            await hook.aclose()
        assert len(s.received) == 1
        assert elsewhere.received == []


@pytest.mark.parametrize("status", [200, 500])
async def test_a_huge_answer_is_not_read_past_the_bound(status: int) -> None:
    async with sink(Answer(endless=True)) as s:
        hook = WebhookPublisher(
            s.url, name="orders", secret=SECRET, delivery="inline", max_response_bytes=1024
        )
        try:
            await hook(result())  # the 200 is taken as it comes; its endless body is dropped
        finally:
            await hook.aclose()
        await s.wait_for(lambda s: not s._tasks)  # the sink noticed the client hung up
    # What the sink managed to push is the kernel's socket buffers, not the terabyte it declared.
    assert s.endless_written < 64 * 1024 * 1024
    assert hook.stats.recent[-1].status_code == 200


async def test_an_error_answer_is_reported_but_bounded() -> None:
    async with sink(Answer(status=500, body=b"e" * 100_000)) as s:
        hook = WebhookPublisher(
            s.url, name="orders", secret=SECRET, delivery="inline", max_response_bytes=1024
        )
        try:
            with pytest.raises(PublishError):
                await hook(result())
        finally:
            await hook.aclose()
    error = hook.stats.recent[-1].error
    assert error is not None
    assert len(error) < 300


def test_the_repr_shows_neither_url_nor_secret() -> None:
    hook = WebhookPublisher(
        "https://user:pw@orders.example/hook?token=t", name="orders", secret=SECRET, delivery="inline"
    )
    assert repr(hook) == "<paynotify.publishers.WebhookPublisher(orders)>"
    assert SECRET not in repr(vars(hook))
    assert SECRET[6:] not in repr(vars(hook))


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"secret": "not-a-secret"}, "must start with 'whsec_'"),
        ({"secret": "whsec_" + base64.b64encode(b"short").decode()}, "shorter than 16 bytes"),
        ({"secret": []}, "at least one secret"),
        ({"name": "a b"}, "webhook name"),
        ({"url": "ftp://x/"}, "http:// or https://"),
        ({"delivery": "queued"}, "needs outbox="),
        ({"headers": {"Webhook-Signature": "x"}}, "may not set Webhook-Signature"),
        ({"timeout": 0}, "0 < timeout"),
    ],
)
def test_settings_are_checked(options: dict[str, object], complaint: str) -> None:
    values: dict[str, object] = {
        "url": "http://127.0.0.1/",
        "name": "orders",
        "secret": SECRET,
        "delivery": "inline",
    }
    values.update(options)
    url = values.pop("url")
    with pytest.raises(ConfigurationError, match=complaint) as caught:
        WebhookPublisher(url, **values)  # type: ignore[arg-type]
    assert "short" not in str(caught.value).replace("shorter", "")


def test_the_signature_is_the_standard_webhooks_published_vector() -> None:
    from paynotify.publishers._webhook_sign import Signer

    vector = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    at = datetime.fromtimestamp(1614265330, UTC)
    signer = Signer([SecretStr(vector), SecretStr(SECRET)], "vector")
    headers = signer.headers("msg_p5jXN8AQM9LWM0D4loKWxJek", b'{"test": 2432232314}', at)
    assert headers["webhook-timestamp"] == "1614265330"
    first, second = headers["webhook-signature"].split(" ")
    assert first == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert second.startswith("v1,")
    assert second != first


# -- filters, rotation, the receiving helper ---------------------------------------------------


async def test_filters_send_only_what_they_name(ok_sink: Sink) -> None:
    hook = WebhookPublisher(
        ok_sink.url, name="o", secret=SECRET, delivery="inline", accounts="shop", providers=["alipay"],
        kinds="payment", statuses=["succeeded"],
    )  # fmt: skip
    try:
        await hook(result(1))
        await hook(result(2, account="other"))
        await hook(result(3, provider="wechatpay-v3"))
        await hook(result(4, kind="refund", refund_id="r"))
        await hook(result(5, status="closed"))
    finally:
        await hook.aclose()
    assert ok_sink.ids() == [result(1).event_id]


async def test_a_secret_rotation_loses_no_message(ok_sink: Sink) -> None:
    """Old secret, then old and new (every message signed with both), then new alone; the receiver
    moves from old to new in the middle: every message it gets verifies with what it holds."""
    old, new = whsec(), whsec()
    phases = [[old], [old, new], [new]]
    sent = 0
    for secrets_now in phases:
        hook = WebhookPublisher(ok_sink.url, name="o", secret=secrets_now, delivery="inline")
        try:
            for _ in range(4):
                sent += 1
                await hook(result(sent))
        finally:
            await hook.aclose()
    receiver_holds = [old] * 6 + [new] * 6  # switches after message 6, during the overlap
    for received, secret in zip(ok_sink.received, receiver_holds, strict=True):
        verified(received, secret)
    assert len(ok_sink.received[5].headers["webhook-signature"].split(" ")) == 2
    with pytest.raises(WebhookVerificationError):
        verified(ok_sink.received[0], new)  # not signed with a secret before it was added


async def test_the_receiving_helper_verifies_and_decodes(ok_sink: Sink) -> None:
    hook = WebhookPublisher(ok_sink.url, name="o", secret=SECRET, delivery="inline")
    try:
        await hook(result(3))
    finally:
        await hook.aclose()
    received = ok_sink.received[0]
    assert paynotify.webhooks.verify(received.body, received.headers, secret=[whsec(), SECRET]) == result(3)
    with pytest.raises(WebhookVerificationError):
        paynotify.webhooks.verify(received.body, received.headers, secret=whsec())
    swapped = {**received.headers, "webhook-id": result(4).event_id}
    with pytest.raises(WebhookVerificationError):
        paynotify.webhooks.verify(received.body, swapped, secret=SECRET)
    old = datetime(2020, 1, 1, tzinfo=UTC)
    body, headers = paynotify.webhooks.sign(result(3), secret=SECRET, at=old)
    with pytest.raises(WebhookVerificationError, match="too old"):
        paynotify.webhooks.verify(body, headers, secret=SECRET)
    body, headers = paynotify.webhooks.sign(result(3), secret=SECRET)
    assert body == received.body
    Webhook(SECRET).verify(body, headers)


# -- the breaker -------------------------------------------------------------------------------


async def test_the_circuit_opens_after_n_failures_then_a_half_open_probe_closes_it() -> None:
    answers = iter([Answer(status=500)] * 2 + [Answer(status=200)] * 10)
    async with sink(lambda _: next(answers)) as s:
        hook = WebhookPublisher(
            s.url, name="o", secret=SECRET, delivery="inline", circuit_failures=2, circuit_reset_seconds=3600
        )
        try:
            for n in (1, 2):
                with pytest.raises(PublishError, match="HTTP 500"):
                    await hook(result(n))
            assert state(hook) is EndpointState.OPEN
            with pytest.raises(PublishError, match="endpoint open"):
                await hook(result(3))
            assert len(s.received) == 2  # open: not even tried
            hook.breaker.opened_at -= 3600  # as if the reset time had passed
            await hook(result(3))  # the half-open probe
            assert len(s.received) == 3
            assert state(hook) is EndpointState.HEALTHY
        finally:
            await hook.aclose()


def test_a_half_open_circuit_lets_one_probe_through_and_a_failed_probe_reopens_it() -> None:
    breaker = CircuitBreaker(failures=2, reset_seconds=10, disable_after_seconds=100)
    breaker.failed(0)
    assert breaker.allow(1)
    assert state(breaker) is EndpointState.FAILING
    breaker.failed(1)
    assert state(breaker) is EndpointState.OPEN
    assert not breaker.allow(5)
    assert breaker.wait(5) == 6
    assert breaker.allow(11)
    assert breaker.circuit.value == "half_open"
    assert not breaker.allow(11)  # one probe at a time
    breaker.failed(12)
    assert breaker.circuit.value == "open"
    assert breaker.wait(12) == 10
    breaker.failed(101)
    assert state(breaker) is EndpointState.DISABLED
    assert breaker.wait(10**9) == float("inf")
    breaker.enable()
    assert state(breaker) is EndpointState.HEALTHY
    assert breaker.allow(102)


def test_the_schedule_is_exponential_with_jitter_and_ends_in_the_dead_letter() -> None:
    schedule = RetrySchedule(backoff_seconds=5, max_backoff_seconds=60, max_attempts=6, jitter=0.5)
    assert [schedule.ceiling(n) for n in range(1, 6)] == [5, 10, 20, 40, 60]
    assert schedule.delay(3, draw=0.0) == 20
    assert schedule.delay(3, draw=1.0) == 10
    assert all(10 <= (schedule.delay(3) or 0) <= 20 for _ in range(100))
    assert schedule.delay(6) is None


# -- queued: the outbox, per endpoint ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_queued_delivery_through_an_outbox_on_every_store(backend: str, tmp_path: Path) -> None:
    answers = iter([Answer(status=503)] + [Answer(status=200)] * 20)
    url = isolated_url(backend, tmp_path)
    async with sink(lambda _: next(answers)) as s:
        hook = WebhookPublisher(
            s.url, name="orders", secret=SECRET, outbox=url, schedule=FAST, poll_seconds=0.05
        )
        await hook.open()
        try:
            for n in range(1, 4):
                await hook(result(n))
            await s.wait_for(lambda s: len(set(s.ids())) == 3 and len(s.ids()) == 4)
            assert hook.outbox is not None
            await wait_done(hook, 3)
            events = {e.event_id: e for e in await hook.outbox.find(limit=10)}
            assert {e.state for e in events.values()} == {EventState.DONE}
            assert sorted(e.attempts for e in events.values()) == [1, 1, 2]
        finally:
            await hook.aclose()
            await drop(backend, url)
    assert [verified(r).event_id for r in s.received] == s.ids()
    assert sorted(Counter(s.ids()).values()) == [1, 1, 2]  # only the one answered 503 came twice


async def wait_done(hook: WebhookPublisher, count: int) -> None:
    outbox = hook.outbox
    assert outbox is not None

    async def done() -> bool:
        return (await outbox.count()).get(EventState.DONE, 0) >= count

    await until(done)


async def test_an_endpoint_has_at_most_concurrency_sends_in_flight(tmp_path: Path) -> None:
    async with sink(Answer(hang=True)) as s:
        hook = WebhookPublisher(
            s.url, name="o", secret=SECRET, outbox="memory://", concurrency=2, poll_seconds=0.05
        )
        outbox = hook.outbox
        assert outbox is not None
        for n in range(6):
            await hook(result(n))
        await hook.open()
        try:
            await s.wait_for(lambda s: len(s.received) == 2)
            # The worker holds its two leases until they are answered; the rest wait their turn.
            assert await outbox.count() == {EventState.IN_FLIGHT: 2, EventState.PENDING: 4}
        finally:
            await hook.aclose(grace=0)
    assert len(s.received) == 2
    assert (await outbox.count()).get(EventState.PENDING) == 6  # handed back at close, due now


async def test_an_open_circuit_keeps_the_outbox_waiting_without_spending_attempts() -> None:
    failing = True
    async with sink(lambda _: Answer(status=500 if failing else 204)) as s:
        now = RetrySchedule(backoff_seconds=1e-6, max_backoff_seconds=1e-6, max_attempts=5, jitter=0)
        hook = WebhookPublisher(
            s.url, name="o", secret=SECRET, outbox="memory://", schedule=now, circuit_failures=2,
            circuit_reset_seconds=3600,
        )  # fmt: skip
        outbox = hook.outbox
        assert outbox is not None
        try:
            for n in range(3):
                await hook(result(n))
            assert await hook.run_once() == 3  # the worker's step, driven by hand: all three fail
            assert state(hook) is EndpointState.OPEN
            assert await hook.run_once() == 0  # open: nothing acquired, nothing sent
            assert len(s.received) == 3
            assert {e.attempts for e in await outbox.find()} == {1}
            failing = False
            hook.breaker.opened_at -= 3600  # as if the reset time had passed
            assert await hook.run_once() == 1  # half-open: one probe
            assert state(hook) is EndpointState.HEALTHY
            assert await hook.run_once() == 2  # closed again: the rest
            assert await outbox.count() == {EventState.DONE: 3}
        finally:
            await hook.aclose()


async def test_the_dead_letter_is_per_endpoint_and_retry_sends_again(tmp_path: Path) -> None:
    failing = True
    async with sink(lambda _: Answer(status=500 if failing else 204)) as s:
        hook = WebhookPublisher(
            s.url, name="o", secret=SECRET, outbox=f"sqlite:///{tmp_path / 'o.db'}",
            schedule=RetrySchedule(backoff_seconds=0.01, max_backoff_seconds=0.01, max_attempts=2),
            poll_seconds=0.05, circuit_failures=100,
        )  # fmt: skip
        await hook.open()
        try:
            await hook(result(1))
            outbox = hook.outbox
            assert outbox is not None

            async def dead() -> bool:
                return (await outbox.count()).get(EventState.DEAD, 0) >= 1

            await until(dead)
            [entry] = await outbox.find(states=[EventState.DEAD])
            assert entry.attempts == 2
            assert entry.last_error == "HTTP 500"
            failing = False
            assert await hook.retry() == 1
            await wait_done(hook, 1)
            assert await hook.retry([result(1).event_id]) == 1  # a resend of a delivered event
            await s.wait_for(lambda s: len(s.received) == 4)
        finally:
            await hook.aclose()


async def test_one_failing_endpoint_never_holds_back_or_resends_to_a_healthy_one(tmp_path: Path) -> None:
    """Two endpoints on one Notifier: every notification is acknowledged and reaches the healthy one
    once, while the other answers 500 throughout."""
    async with sink() as healthy, sink(Answer(status=500)) as broken:
        store = f"sqlite:///{tmp_path / 'events.db'}"
        hooks = [
            WebhookPublisher(broken.url, name="broken", secret=SECRET, outbox=outbox_url(store, "broken"),
                             schedule=FAST, poll_seconds=0.05, circuit_failures=3),
            WebhookPublisher(healthy.url, name="healthy", secret=SECRET, outbox=outbox_url(store, "healthy"),
                             schedule=FAST, poll_seconds=0.05),
        ]  # fmt: skip
        notifier = Notifier(store)
        notifier.add_account("shop", "examplepay", app_id="app-1", secret="example-secret-for-tests")
        for hook in hooks:
            notifier.subscribe(hook)
        async with (
            notifier,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=notifier.asgi()), base_url="http://paynotify.test"
            ) as client,
        ):
            for n in range(10):
                response = await post_example(client, example_notify(f"order-{n}"))
                assert response.status_code == 200, response.text
            await healthy.wait_for(lambda s: len(s.received) == 10)
            await wait_done(hooks[1], 10)
            assert (await notifier.store.count()).get(EventState.DONE) == 10
            assert hooks[0].outbox is not None
            assert (await hooks[0].outbox.count()).get(EventState.DONE, 0) == 0
            assert state(hooks[0]) in (EndpointState.OPEN, EndpointState.FAILING)
        assert len(set(healthy.ids())) == 10 == len(healthy.ids())
        assert {verified(r).order_id for r in healthy.received} == {f"order-{n}" for n in range(10)}


async def test_inline_endpoints_are_subscribers_a_retry_runs_only_the_failed_one(tmp_path: Path) -> None:
    broken_now = True
    async with sink() as first, sink(lambda _: Answer(status=500 if broken_now else 204)) as second:
        notifier = Notifier("memory://")
        notifier.add_account("shop", "examplepay", app_id="app-1", secret="example-secret-for-tests")
        notifier.subscribe(WebhookPublisher(first.url, name="first", secret=SECRET, delivery="inline"))
        notifier.subscribe(WebhookPublisher(second.url, name="second", secret=SECRET, delivery="inline"))
        async with (
            notifier,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=notifier.asgi()), base_url="http://paynotify.test"
            ) as client,
        ):
            notify = example_notify("order-1")
            assert (await post_example(client, notify)).text == "RETRY"  # the provider will resend
            broken_now = False
            assert (await post_example(client, notify)).text == "OK"
        assert len(first.received) == 1  # not re-sent by the second endpoint's failure
        assert len(second.received) == 2


def test_outbox_urls_sit_beside_the_store() -> None:
    assert outbox_url("sqlite:///data/events.db", "orders") == "sqlite:///data/events.webhook-orders.db"
    assert outbox_url("sqlite:////abs/events", "o") == "sqlite:////abs/events.webhook-o"
    assert outbox_url("memory://", "o") == "memory://"
    assert (
        outbox_url("postgresql://u@h/db?schema=pay", "crm-eu")
        == "postgresql://u@h/db?schema=pay_webhook_crm_eu"
    )
    assert outbox_url("postgresql://u@h/db", "o") == "postgresql://u@h/db?schema=public_webhook_o"
    assert outbox_url("redis://h:6379/0", "o") == "redis://h:6379/0?prefix=paynotify%3Awebhook%3Ao%3A"


# -- the config file ---------------------------------------------------------------------------


def test_webhooks_in_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = whsec(), whsec()
    monkeypatch.setenv("HOOK_OLD", old)
    (tmp_path / "new.secret").write_text(new + "\n")
    (tmp_path / "paynotify.toml").write_text(
        'store = "sqlite:///events.db"\n'
        '[accounts.shop]\nprovider = "examplepay"\napp_id = "app-1"\nsecret_env = "HOOK_OLD"\n'
        '[[webhooks]]\nname = "orders"\nurl = "http://127.0.0.1:9/hook"\nsecret_env = "HOOK_OLD"\n'
        'kind = "payment"\naccount = ["shop"]\ntimeout = 2.5\nmax_attempts = 3\n'
        '[[webhooks]]\nname = "crm"\nurl = "http://127.0.0.1:9/crm"\nsecret_file = ["new.secret"]\n'
        'delivery = "inline"\nheaders = {x-team = "crm"}\n'
    )
    notifier = Notifier.from_config(tmp_path / "paynotify.toml")
    hooks = [s.fn for s in notifier._subscribers.subscribers]
    assert [getattr(h, "name", None) for h in hooks] == [
        "paynotify.publishers.WebhookPublisher(orders)",
        "paynotify.publishers.WebhookPublisher(crm)",
    ]
    orders, crm = hooks
    assert isinstance(orders, WebhookPublisher)
    assert isinstance(crm, WebhookPublisher)
    assert orders.timeout == 2.5
    assert orders.schedule.max_attempts == 3
    assert orders.accounts == frozenset({"shop"})
    assert orders.kinds == frozenset({Kind.PAYMENT})
    assert orders._outbox_given == f"sqlite:///{tmp_path / 'events.webhook-orders.db'}"
    assert crm.delivery == "inline"
    assert crm._headers["x-team"] == "crm"


def test_a_secret_inline_in_the_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "paynotify.toml").write_text(
        '[accounts.shop]\nprovider = "examplepay"\napp_id = "a"\nsecret_env = "HOME"\n'
        f'[[webhooks]]\nname = "o"\nurl = "http://127.0.0.1/"\nsecret = "{SECRET}"\ndelivery = "inline"\n'
    )
    with pytest.raises(ConfigurationError, match="inline; use secret_env or secret_file") as caught:
        Notifier.from_config(tmp_path / "paynotify.toml")
    assert SECRET not in str(caught.value)


# -- metrics -----------------------------------------------------------------------------------


async def test_metrics_per_endpoint(ok_sink: Sink) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from paynotify.ops import Instrumentation

    notifier = Notifier("memory://")
    good = WebhookPublisher(ok_sink.url, name="good", secret=SECRET, delivery="inline")
    gone = WebhookPublisher(f"http://127.0.0.1:{free_port()}/", name="gone", secret=SECRET, delivery="inline")
    notifier.subscribe(good)
    notifier.subscribe(gone)
    registry = CollectorRegistry()
    Instrumentation(registry=registry, tracing=False).attach(notifier)
    try:
        await good(result(1))
        await good(result(2))
        with pytest.raises(PublishError):
            await gone(result(1))
    finally:
        await good.aclose()
        await gone.aclose()
    text = generate_latest(registry).decode()
    assert 'paynotify_webhook_attempts_total{endpoint="good"} 2.0' in text
    assert 'paynotify_webhook_failures_total{endpoint="gone"} 1.0' in text
    assert 'paynotify_webhook_seconds_count{endpoint="good"} 2.0' in text
    assert 'paynotify_webhook_state{endpoint="gone",state="failing"} 1.0' in text
    assert 'paynotify_webhook_state{endpoint="good",state="healthy"} 1.0' in text
    assert "127.0.0.1" not in text


async def test_an_outbox_down_at_start_still_gets_its_worker() -> None:
    outbox = f"redis://127.0.0.1:{free_port()}/0?timeout=0.2"
    hook = WebhookPublisher("http://127.0.0.1:9/", name="o", secret=SECRET, outbox=outbox, poll_seconds=0.05)
    await hook.open()  # logs the outage, does not raise
    try:
        assert hook._worker is not None
        assert not hook._worker.done()
        with pytest.raises(PublishError, match="could not enqueue"):
            await hook(result())  # the subscriber fails: the event is retried, not lost
    finally:
        await hook.aclose()
