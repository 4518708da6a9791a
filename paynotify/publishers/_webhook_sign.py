"""Standard Webhooks signatures (standardwebhooks.com), made and checked by the `standardwebhooks`
library: `webhook-id` is the event id, `webhook-timestamp` the Unix second of the attempt, and
`webhook-signature` one `v1,<base64 HMAC-SHA256>` per secret, space-separated, so a receiver holding
any one of the secrets in rotation verifies."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import SecretStr

from paynotify import ConfigurationError

if TYPE_CHECKING:
    from standardwebhooks.webhooks import Webhook

__all__ = ["SECRET_PREFIX", "Signer", "secret_values"]

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not one)


def secret_values(secrets: str | SecretStr | Sequence[str | SecretStr], what: str) -> list[SecretStr]:
    """`secrets` as a non-empty list of `SecretStr`, each `whsec_` + base64 of at least 16 bytes."""
    items = [secrets] if isinstance(secrets, str | SecretStr) else list(secrets)
    if not items:
        raise ConfigurationError(f"{what}: give at least one secret (whsec_...)")
    values = [s if isinstance(s, SecretStr) else SecretStr(s) for s in items]
    for position, value in enumerate(values, 1):
        _webhook(value, f"{what}: secret {position}")
    return values


def _webhook(secret: SecretStr, what: str) -> Webhook:
    if importlib.util.find_spec("standardwebhooks") is None:
        raise ConfigurationError("webhooks need standardwebhooks: pip install 'paynotify[webhooks]'")
    from standardwebhooks.webhooks import Webhook

    text = secret.get_secret_value()
    if not text.startswith(SECRET_PREFIX):
        # The library would take bare base64 too; the prefix is what tells a webhook secret from
        # any other string pasted into the wrong field. Never the value itself in the message.
        raise ConfigurationError(f"{what} must start with {SECRET_PREFIX!r} (whsec_ + base64)")
    try:
        webhook = Webhook(text)
    except Exception:
        raise ConfigurationError(f"{what} is not whsec_ followed by base64") from None
    if len(webhook._whsecret) < 16:
        raise ConfigurationError(f"{what} is shorter than 16 bytes; make one with secrets.token_bytes(32)")
    return webhook


class Signer:
    """Signs bodies with every secret given; holds the decoded keys, never shows them."""

    def __init__(self, secrets: Sequence[SecretStr], what: str) -> None:
        self._webhooks = [_webhook(s, what) for s in secrets]

    def __repr__(self) -> str:
        return f"<Signer: {len(self._webhooks)} secret(s)>"

    def headers(self, event_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
        """The three Standard Webhooks headers for `body`, timestamped `at` (now by default)."""
        moment = at or datetime.now(UTC)
        signatures = " ".join(w.sign(event_id, moment, body) for w in self._webhooks)
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signatures,
        }


def verify_with(secrets: Sequence[str | SecretStr], body: bytes | str, headers: Mapping[str, str]) -> None:
    """Raise `standardwebhooks.WebhookVerificationError` unless one secret verifies the headers."""
    from standardwebhooks.webhooks import WebhookVerificationError

    values = secret_values(list(secrets), "verify")
    plain = {k: v for k, v in headers.items()}
    error: Exception | None = None
    for value in values:
        try:
            _webhook(value, "verify").verify(body, plain, json_parse=False)
            return
        except WebhookVerificationError as exc:
            error = exc
    assert error is not None
    raise error
