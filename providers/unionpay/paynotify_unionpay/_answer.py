"""What every call to UnionPay's API shares: the signed form it sends, and the answer believed only
once its signature verifies (the order query and the file transfer differ only in their fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from paynotify import (
    ApiRequest,
    ApiResponse,
    MalformedNotification,
    ProviderApiError,
    ProviderUnavailable,
    VerificationError,
)
from paynotify_unionpay._api_signing import SigningKey
from paynotify_unionpay._form import decode_form
from paynotify_unionpay._settings import UnionPaySettings
from paynotify_unionpay._signature import sign, sign_string

if TYPE_CHECKING:
    from paynotify_unionpay._certs import Certificate
    from paynotify_unionpay._provider import UnionPayProvider

__all__ = ["SHOWN", "signed_request", "verified_answer"]

SHOWN = 60
"""The most characters of a provider's code or message put into an error."""
_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"


def signed_request(url: str, fields: dict[str, str], signing: SigningKey) -> ApiRequest:
    """`fields` signed with the merchant's key (its `signature` added), form-encoded for `url`."""
    raw = {k.encode("ascii"): v.encode("utf-8") for k, v in fields.items()}
    fields["signature"] = sign(sign_string(raw), signing.key, "5.1.0")
    return ApiRequest("POST", url, {"Content-Type": _CONTENT_TYPE}, _encode(fields))


def _encode(fields: Mapping[str, str]) -> bytes:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items()).encode("ascii")


def verified_answer(
    provider: UnionPayProvider, settings: UnionPaySettings, response: ApiResponse, name: str, what: str
) -> tuple[dict[str, str], Certificate]:
    """The answer's fields and the certificate that signed them. An HTTP error, a body that is not a
    form, an unsigned refusal (`what` names the request: "the query") or a signature that does not
    verify raises; nothing of such an answer is believed."""
    if response.status >= 500:
        raise ProviderUnavailable(f"account {name!r}: UnionPay answered HTTP {response.status}", account=name)
    if response.status != 200:
        raise ProviderApiError(f"account {name!r}: UnionPay answered HTTP {response.status}", account=name)
    try:
        form = decode_form(response.body)
    except MalformedNotification as exc:
        raise ProviderApiError(
            f"account {name!r}: UnionPay's answer is not a form: {exc}", account=name
        ) from None
    if not form.raw.get(b"signature"):
        code = form.raw.get(b"respCode", b"").decode("ascii", "replace")[:SHOWN]
        if code != "00":  # an unsigned refusal: named, never believed
            raise ProviderApiError(
                f"account {name!r}: UnionPay refused {what} (respCode {code!r}, unsigned)",
                account=name,
                code=code or None,
            )
    try:
        certificate = provider.verify(form, settings)
        fields = form.text()
    except VerificationError as exc:
        exc.account = exc.account or name
        raise
    except MalformedNotification as exc:
        raise ProviderApiError(f"account {name!r}: UnionPay's answer: {exc.message}", account=name) from None
    return fields, certificate
