"""Shared helpers of the test_alipay_* modules: throwaway RSA keys (made once), the real vectors,
and a provider call without the pipeline. Nothing here fakes verification."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from paynotify_alipay import AlipayProvider, AlipaySettings
from paynotify_alipay.testing import SELLER_ID, certificate_pem, generate_key, public_key_pem

from paynotify import Account, InboundRequest, PaymentResult, UnhandledEvent

VECTORS = Path(__file__).parent / "vectors" / "alipay"
VECTOR_APP_ID = "9021000122682882"
VECTOR_SELLER_ID = "2088721003899159"

APP_ID = "2021000000000001"
PROVIDER = AlipayProvider()
NOTIFY_FIELDS = {
    "app_id": APP_ID,
    "notify_type": "trade_status_sync",
    "notify_id": "2024052000222123105012345678901234",
    "out_trade_no": "o-1",
    "trade_no": "2024052022001400000000000001",
}
"""The least a notification needs to be accepted, for tests that build fields by hand."""


@functools.cache
def _key(name: str) -> RSAPrivateKey:
    return generate_key()


def key(name: str = "alipay") -> RSAPrivateKey:
    """A throwaway RSA key per name, generated once per test session."""
    return _key(name)


def pem(name: str = "alipay") -> str:
    return public_key_pem(key(name))


@functools.cache
def cert(name: str = "alipay", chain: bool = False) -> str:
    """A throwaway certificate (PEM) of key(name), made once per test session; a leaf + CA chain
    when `chain`, as Alipay's alipayCertPublicKey_RSA2.crt is."""
    return certificate_pem(key(name), chain=chain)


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def vector_key() -> str:
    return (VECTORS / "sandbox_rsa2_public_key.pem").read_text()


def vector_cert(name: str = "sandbox_alipay_public_cert.crt") -> str:
    """A certificate vector as text; the default is the sandbox alipayCertPublicKey_RSA2.crt."""
    return (VECTORS / name).read_text()


def account(name: str = "shop", **settings: Any) -> Account[AlipaySettings]:
    """An Alipay account; defaults to APP_ID, the "alipay" key and the helpers' seller id."""
    values: dict[str, Any] = {"app_id": APP_ID, "alipay_public_key": pem(), "seller_id": SELLER_ID}
    values.update(settings)
    return Account(name, PROVIDER, AlipaySettings(**values))


def vector_account(**settings: Any) -> Account[AlipaySettings]:
    values: dict[str, Any] = {
        "app_id": VECTOR_APP_ID,
        "alipay_public_key": vector_key(),
        "seller_id": VECTOR_SELLER_ID,
    }
    values.update(settings)
    return account("sandbox", **values)


def parse(
    data: bytes,
    acct: Account[AlipaySettings] | None = None,
    *,
    channel: str = "notify",
    method: str = "POST",
) -> PaymentResult:
    """Run one request through AlipayProvider.parse: a GET carries `data` as its query."""
    get = method == "GET"
    request = InboundRequest(method, channel, query=data if get else b"", body=b"" if get else data)
    result = PROVIDER.parse(request, acct or account())
    assert isinstance(result, PaymentResult), "an open-platform message: use parse_any"
    return result


def parse_any(data: bytes, acct: Account[AlipaySettings] | None = None) -> PaymentResult | UnhandledEvent:
    """A notify through AlipayProvider.parse, whatever it is (a trade or an open-platform message)."""
    return PROVIDER.parse(InboundRequest("POST", "notify", body=data), acct or account())


def pairs(data: bytes) -> list[tuple[bytes, bytes]]:
    """A form split into percent-decoded byte pairs, in order (an independent re-implementation)."""
    from urllib.parse import unquote_to_bytes

    out = []
    for part in data.split(b"&"):
        name, _, value = part.partition(b"=")
        out.append((unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))))
    return out


def join(items: list[tuple[bytes, bytes]]) -> bytes:
    """The inverse of pairs(): form-encode byte pairs the way Alipay does (space as `+`)."""
    return b"&".join(quote_plus(k).encode() + b"=" + quote_plus(v).encode() for k, v in items)
