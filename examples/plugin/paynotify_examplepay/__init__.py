"""ExamplePay: a minimal provider plugin, the template for adding a provider to paynotify.

ExamplePay POSTs a JSON body signed with HMAC-SHA256 in the `X-Signature` header (lower-case hex)
and expects `OK` back. Copy this package, change the format, keep the shape:

1. a settings model (subclass of `AccountSettings`) that validates and prepares keys once;
2. `parse()` that verifies the raw bytes FIRST, then normalizes into a `PaymentResult`;
3. `ack()` / `nack()` with the provider's own reply bytes;
4. an entry point in the `paynotify.providers` group (see pyproject.toml).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from pydantic import SecretStr

from paynotify import (
    Account,
    AccountSettings,
    InboundRequest,
    Kind,
    MalformedNotification,
    NotificationError,
    PaymentResult,
    Provider,
    Reply,
    Status,
    VerificationError,
    make_event_id,
)

__all__ = ["ExamplePayProvider", "ExamplePaySettings", "sign"]

_STATUSES = {"paid": Status.SUCCEEDED, "pending": Status.PENDING, "closed": Status.CLOSED}


class ExamplePaySettings(AccountSettings):
    app_id: str
    secret: SecretStr

    def expected_app_id(self) -> str | None:
        return self.app_id


def sign(body: bytes, secret: str) -> str:
    """The signature ExamplePay puts in `X-Signature`; tests use it to make real notifications."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ExamplePayProvider(Provider[ExamplePaySettings]):
    name = "examplepay"
    settings_model = ExamplePaySettings
    channels: ClassVar[frozenset[str]] = frozenset({"notify"})

    def parse(self, request: InboundRequest, account: Account[ExamplePaySettings]) -> PaymentResult:
        received = request.headers.get("x-signature", "")
        if not received:
            raise VerificationError("missing X-Signature header")
        expected = sign(request.body, account.settings.secret.get_secret_value())
        if not hmac.compare_digest(received.lower().encode(), expected.encode()):
            raise VerificationError("X-Signature does not match the body")
        try:
            data: dict[str, Any] = json.loads(request.body)
            status = _STATUSES[data["status"]]
            amount = Decimal(str(data["amount"]))
            order_id, txn_id = str(data["order_id"]), str(data["txn_id"])
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            raise MalformedNotification(f"not an ExamplePay notification: {exc!r}") from None
        return PaymentResult(
            provider=self.name,
            account=account.name,
            kind=Kind.PAYMENT,
            status=status,
            provider_status=data["status"],
            order_id=order_id,
            transaction_id=txn_id,
            amount=amount,
            app_id=data.get("app_id"),
            event_id=make_event_id(account.name, Kind.PAYMENT, txn_id, None, data["status"]),
            raw=data,
        )

    def ack(self) -> Reply:
        return Reply.text("OK")

    def nack(self, error: NotificationError) -> Reply:
        return Reply.text("RETRY", 400)
