"""Publishers: subscribers that hand each PaymentResult to a message broker, once per event.

from paynotify.publishers import NatsPublisher

notifier.subscribe(NatsPublisher("nats://127.0.0.1:4222", stream="PAYMENTS"), kind="payment")

Each is an async callable returning only after the broker confirmed the message (raising
`PublishError` otherwise, so the provider is asked to retry or the dispatcher backs off). The broker
clients are optional extras: paynotify[nats], paynotify[rabbitmq], paynotify[redis]. The message
format is one for all brokers and webhooks: `message_schema()`, docs/publishers.md.
`WebhookPublisher` POSTs it, signed (Standard Webhooks), to an HTTP endpoint: docs/webhooks.md.
"""

from paynotify.publishers._base import DEFAULT_TIMEOUT, Publisher, PublishError
from paynotify.publishers._message import (
    SCHEMA_VERSION,
    TEMPLATE_FIELDS,
    Message,
    decode_message,
    encode_message,
    message_schema,
)
from paynotify.publishers._nats import NatsPublisher
from paynotify.publishers._rabbitmq import RabbitMQPublisher
from paynotify.publishers._redis import RedisStreamPublisher
from paynotify.publishers._webhook import WebhookPublisher, webhook_publishers
from paynotify.publishers._webhook_state import LATENCY_BUCKETS, EndpointState, RetrySchedule
from paynotify.publishers._webhook_urls import outbox_url, shown_url

__all__ = [
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
