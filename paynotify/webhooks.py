"""Receiving paynotify's webhooks in a Python service: verify, then decode.

    from paynotify.webhooks import verify

    result = verify(request_body, request.headers, secret=os.environ["PAYNOTIFY_WEBHOOK_SECRET"])
    ship(result.order_id, idempotency_key=result.event_id)   # webhook-id == result.event_id

`verify` checks the Standard Webhooks signature with the `standardwebhooks` library (a timestamp
more than 5 minutes away is refused) and returns the `PaymentResult` in the body. `sign` makes the
same body and headers paynotify sends, for a receiver's tests. Other languages: docs/webhooks.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import SecretStr

from paynotify import PaymentResult
from paynotify.publishers import decode_message, encode_message
from paynotify.publishers._webhook_sign import Signer, secret_values, verify_with

__all__ = ["sign", "verify"]


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    secret: str | SecretStr | Sequence[str | SecretStr],
) -> PaymentResult:
    """The PaymentResult of a webhook whose signature one of `secret` verifies; else
    `standardwebhooks.WebhookVerificationError` (answer 400, paynotify retries). Pass the body
    exactly as received."""
    verify_with(secret_values(secret, "verify"), body, headers)
    result = decode_message(body)
    if result.event_id != {k.lower(): v for k, v in headers.items()}.get("webhook-id"):
        from standardwebhooks.webhooks import WebhookVerificationError

        raise WebhookVerificationError("webhook-id is not the event id of the body")
    return result


def sign(
    result: PaymentResult,
    *,
    secret: str | SecretStr | Sequence[str | SecretStr],
    at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers paynotify would POST for `result`, signed with every secret given."""
    message = encode_message(result)
    signer = Signer(secret_values(secret, "sign"), "sign")
    return message.body, {
        "content-type": "application/json",
        **signer.headers(result.event_id, message.body, at),
    }
