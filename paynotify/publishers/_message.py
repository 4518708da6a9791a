"""The one message format every publisher sends: a versioned JSON envelope around the PaymentResult,
plus the same identifying fields as headers (NATS, RabbitMQ) or stream fields (Redis)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from paynotify import ConfigurationError, PaymentResult

__all__ = [
    "CONTENT_TYPE",
    "SCHEMA_VERSION",
    "TEMPLATE_FIELDS",
    "Message",
    "check_template",
    "decode_message",
    "encode_message",
    "message_schema",
    "render_template",
]

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"

# What a template may name: the fields that identify and route an event, never amounts or raw data.
TEMPLATE_FIELDS = ("provider", "account", "kind", "status", "source", "provider_status", "event_id")


class _Envelope(BaseModel):
    # The model's own serialisation, so Decimal stays a string and times keep their offset.
    model_config = ConfigDict(frozen=True, extra="forbid", title="paynotify message")

    schema_version: Literal[1]
    result: PaymentResult


@dataclass(frozen=True, slots=True)
class Message:
    """What a publisher hands to its broker: the body and the fields it repeats as headers."""

    body: bytes
    headers: dict[str, str]
    event_id: str


def encode_message(result: PaymentResult) -> Message:
    """The message for `result`: body `{"schema_version": 1, "result": {...}}` and headers
    `schema_version`, `event_id`, `provider`, `account`, `kind`, `status`."""
    body = _Envelope(schema_version=SCHEMA_VERSION, result=result).model_dump_json().encode()
    headers = {
        "schema_version": str(SCHEMA_VERSION),
        "event_id": result.event_id,
        "provider": result.provider,
        "account": result.account,
        "kind": result.kind.value,
        "status": result.status.value,
    }
    return Message(body, headers, result.event_id)


def decode_message(body: bytes | str) -> PaymentResult:
    """The PaymentResult in a message body (pydantic's ValidationError if the body is not one)."""
    return _Envelope.model_validate_json(body).result


def message_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a message body, for consumers in other languages."""
    schema = _Envelope.model_json_schema(mode="serialization")
    # The model's docstring is written for Python readers (a doctest); consumers get a plain one.
    schema["$defs"]["PaymentResult"]["description"] = (
        "A verified payment or refund notification, the same shape for every provider "
        "(paynotify.PaymentResult): amounts are decimal strings, times ISO 8601 with their offset."
    )
    schema["description"] = "A PaymentResult published by paynotify, in a versioned envelope."
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def check_template(template: str, what: str) -> str:
    """`template` if every placeholder is one of TEMPLATE_FIELDS, else ConfigurationError."""
    for name in _PLACEHOLDER.findall(template):
        if name not in TEMPLATE_FIELDS:
            raise ConfigurationError(
                f"{what} {template!r} names {{{name}}}; use only: {', '.join(TEMPLATE_FIELDS)}"
            )
    return template


# A dot separates NATS subject tokens and AMQP topic words; '*', '>' and '#' are wildcards there.
# Account names may contain dots, so a value is made into one token (the headers keep it exact).
_NOT_IN_TOKEN = re.compile(r"[.*>#\s]")


def render_template(template: str, result: PaymentResult) -> str:
    """`template` filled from `result`, each value made a single subject/routing-key token."""
    values = {
        "provider": result.provider,
        "account": result.account,
        "kind": result.kind.value,
        "status": result.status.value,
        "source": result.source.value,
        "provider_status": result.provider_status,
        "event_id": result.event_id,
    }
    return template.format_map({k: _NOT_IN_TOKEN.sub("_", v) or "_" for k, v in values.items()})
