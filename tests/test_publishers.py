"""Publishers without a broker: the exported names, the message format and its schema, subscriber
names, templates, and the deadline when a broker does not answer or is not there."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _brokers import free_port

import paynotify.publishers
from paynotify import BEIJING, ConfigurationError, Kind, Notifier, PaymentResult
from paynotify._subscribers import default_name
from paynotify.publishers import (
    SCHEMA_VERSION,
    NatsPublisher,
    Publisher,
    PublishError,
    RabbitMQPublisher,
    RedisStreamPublisher,
    decode_message,
    encode_message,
    message_schema,
)

RESULT = PaymentResult(
    provider="alipay",
    account="shop.cn",
    kind="payment",
    status="succeeded",
    provider_status="TRADE_SUCCESS",
    order_id="order-1",
    transaction_id="2024052822001",
    amount=Decimal("88.80"),
    paid_at=datetime(2024, 5, 28, 15, 45, 57, tzinfo=BEIJING),
    event_id="0123456789abcdef0123456789abcdef",
    raw={"trade_status": "TRADE_SUCCESS", "total_amount": "88.80"},
)


def test_exported_names() -> None:
    assert paynotify.publishers.__all__ == [
        "DEFAULT_TIMEOUT",
        "LATENCY_BUCKETS",
        "SCHEMA_VERSION",
        "TEMPLATE_FIELDS",
        "EndpointState",
        "Message",
        "NatsPublisher",
        "PublishError",
        "Publisher",
        "RabbitMQPublisher",
        "RedisStreamPublisher",
        "RetrySchedule",
        "WebhookPublisher",
        "decode_message",
        "encode_message",
        "message_schema",
        "outbox_url",
        "shown_url",
        "webhook_publishers",
    ]
    for name in paynotify.publishers.__all__:
        assert hasattr(paynotify.publishers, name), name


# -- the message -------------------------------------------------------------------------------


def test_the_body_is_the_results_own_json_in_a_versioned_envelope() -> None:
    message = encode_message(RESULT)
    body = json.loads(message.body)
    assert body["schema_version"] == SCHEMA_VERSION == 1
    assert body["result"] == json.loads(RESULT.model_dump_json())
    assert body["result"]["amount"] == "88.80"  # Decimal as a string, trailing zero kept
    assert body["result"]["paid_at"] == "2024-05-28T15:45:57+08:00"
    assert decode_message(message.body) == RESULT


def test_the_headers_repeat_what_identifies_and_routes_the_event() -> None:
    assert encode_message(RESULT).headers == {
        "schema_version": "1",
        "event_id": RESULT.event_id,
        "provider": "alipay",
        "account": "shop.cn",
        "kind": "payment",
        "status": "succeeded",
    }


def test_messages_validate_against_the_exported_schema() -> None:
    schema = message_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(json.loads(encode_message(RESULT).body))
    refund = RESULT.model_copy(update={"kind": Kind.REFUND, "refund_amount": Decimal("1.00"), "raw": {}})
    validator.validate(json.loads(encode_message(refund).body))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("result", "amount"), 88.8),  # a float amount is what the schema exists to refuse
        (("schema_version",), 2),
        (("result", "kind"), "chargeback"),
        (("result", "surprise"), "x"),
    ],
)
def test_the_schema_refuses_what_a_consumer_must_not_accept(path: tuple[str, ...], value: Any) -> None:
    body = json.loads(encode_message(RESULT).body)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, message_schema())


# -- names and templates -----------------------------------------------------------------------


def test_default_names_follow_the_target_not_the_server() -> None:
    a = NatsPublisher("nats://a:4222", stream="PAYMENTS")
    assert (
        default_name(a)
        == a.name
        == ("paynotify.publishers.NatsPublisher(PAYMENTS:payments.{provider}.{account}.{kind}.{status})")
    )
    assert NatsPublisher("nats://b:4222", stream="PAYMENTS").name == a.name  # the broker moved
    assert NatsPublisher(stream="OTHER").name != a.name
    assert NatsPublisher(subject="refunds.{account}").name != NatsPublisher().name
    assert RedisStreamPublisher(stream="a").name == "paynotify.publishers.RedisStreamPublisher(a)"
    assert RedisStreamPublisher(stream="a").name != RedisStreamPublisher(stream="b").name
    assert RabbitMQPublisher(exchange="x").name != RabbitMQPublisher(exchange="y").name
    assert RabbitMQPublisher(routing_key="a").name != RabbitMQPublisher(routing_key="b").name


def test_two_publishers_subscribe_side_by_side_unless_they_share_a_target() -> None:
    notifier = Notifier("memory://")
    notifier.subscribe(RedisStreamPublisher(stream="payments"), kind="payment")
    notifier.subscribe(RedisStreamPublisher(stream="audit"))
    with pytest.raises(ConfigurationError, match="already registered"):
        notifier.subscribe(RedisStreamPublisher("redis://elsewhere/0", stream="payments"))
    notifier.subscribe(RedisStreamPublisher("redis://elsewhere/0", stream="payments"), name="payments-dr")


def test_repr_names_the_target_and_never_the_credentials() -> None:
    publisher = RabbitMQPublisher("amqp://shop:s3cret@mq.internal/")
    assert "s3cret" not in repr(publisher)
    assert "payments" in repr(publisher)


def test_a_template_names_only_known_fields() -> None:
    with pytest.raises(ConfigurationError, match=r"\{amount\}"):
        NatsPublisher(subject="payments.{amount}")
    with pytest.raises(ConfigurationError, match=r"\{0\}"):
        RabbitMQPublisher(routing_key="payments.{0}")


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        NatsPublisher(timeout=0)
    with pytest.raises(ConfigurationError, match="dedup_ttl"):
        RedisStreamPublisher(dedup_ttl=0)


# -- deadlines ---------------------------------------------------------------------------------

PUBLISHERS: dict[str, Any] = {
    "nats": lambda port, **kw: NatsPublisher(f"nats://127.0.0.1:{port}", **kw),
    "rabbitmq": lambda port, **kw: RabbitMQPublisher(f"amqp://guest:guest@127.0.0.1:{port}/", **kw),
    "redis": lambda port, **kw: RedisStreamPublisher(f"redis://127.0.0.1:{port}/0", **kw),
}


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never says a word: a broker that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(OSError):
            await reader.read()  # until the client hangs up, never answering
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for writer in held:
        writer.transport.abort()
    await server.wait_closed()
    await asyncio.sleep(0)  # let the handlers see their connections end


@pytest.mark.parametrize("broker", list(PUBLISHERS))
async def test_a_broker_that_hangs_makes_the_publish_raise_at_its_deadline(
    broker: str, silent_port: int
) -> None:
    publisher: Publisher[Any] = PUBLISHERS[broker](silent_port, timeout=0.5)
    started = time.monotonic()
    # wait_for: without the publisher's own deadline this fails instead of hanging the suite.
    with pytest.raises(PublishError, match=r"within 0\.5 s"):
        await asyncio.wait_for(publisher(RESULT), 5)
    assert 0.4 < time.monotonic() - started < 0.85  # the deadline, not a library timer behind it
    with pytest.raises(PublishError, match=r"within 0\.5 s"):
        await asyncio.wait_for(publisher.open(), 5)
    await publisher.aclose()


@pytest.mark.parametrize("broker", list(PUBLISHERS))
async def test_a_broker_that_is_not_there_makes_the_publish_raise_at_once(broker: str) -> None:
    publisher: Publisher[Any] = PUBLISHERS[broker](free_port(), timeout=3.0)
    started = time.monotonic()
    with pytest.raises(PublishError, match=RESULT.event_id):
        await publisher(RESULT)
    # A refused connection is an answer: the provider hears "retry" now, not at the deadline.
    assert time.monotonic() - started < 1.0
    await publisher.aclose()


def test_the_schema_in_the_docs_is_the_one_message_schema_returns() -> None:
    page = (Path(__file__).parent.parent / "docs" / "publishers.md").read_text()
    marker = page.index("<!-- message-schema:")
    start = page.index("```json\n", marker) + len("```json\n")
    documented = json.loads(page[start : page.index("\n```", start)])
    assert documented == message_schema(), "regenerate the block in docs/publishers.md"


def test_a_missing_client_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nats" else real(name))
    with pytest.raises(ConfigurationError, match=r"pip install 'paynotify\[nats\]'"):
        NatsPublisher()
