"""Shared helpers of the test_unionpay_* modules: the real vectors, a provider pinned to their time,
throwaway CFCA-like chains (made once), and a provider call without the pipeline. Nothing here
fakes verification."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from paynotify_unionpay import UnionPayProvider, UnionPaySettings
from paynotify_unionpay.testing import MER_ID, SigningChain, generate_chain, make_notify

__all__ = [
    "MER_ID",
    "ORDER_ID",
    "PINNED",
    "PROVIDER",
    "SIGNED_AT",
    "VECTORS",
    "VECTOR_CERT_ID",
    "VECTOR_MER_ID",
    "account",
    "chain",
    "join",
    "notify",
    "pairs",
    "parse",
    "replace_field",
    "result",
    "txt_as_form",
    "vector",
    "vector_account",
]

from paynotify import BEIJING, Account, InboundRequest, PaymentResult, UnhandledEvent

VECTORS = Path(__file__).parent / "vectors" / "unionpay"
VECTOR_MER_ID = "777290058167151"
VECTOR_CERT_ID = "69678957876"
SIGNED_AT = datetime(2022, 9, 8, 13, 22, 6, tzinfo=BEIJING).timestamp()
"""txnTime of the consume notification vector: inside its leaf's validity (2020-07-31..2025-07-31)."""
PINNED = UnionPayProvider(clock=lambda: SIGNED_AT)
PROVIDER = UnionPayProvider()
ORDER_ID = "order20260101001"


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def txt_as_form(name: str) -> bytes:
    """A raw synchronous response (`k=v&...`, values not percent-encoded) as the form UnionPay
    would POST: split on `&` and the first `=`, each value percent-encoded, nothing else changed."""
    items = [part.partition(b"=") for part in vector(name).split(b"&")]
    return join([(k, v) for k, _, v in items])


def pairs(data: bytes) -> list[tuple[bytes, bytes]]:
    """A form split into percent-decoded byte pairs, in order (an independent re-implementation)."""
    out = []
    for part in data.split(b"&"):
        name, _, value = part.partition(b"=")
        out.append((unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))))
    return out


def join(items: list[tuple[bytes, bytes]]) -> bytes:
    """The inverse of pairs(): every reserved byte as %XX, as the vector is encoded."""
    return b"&".join(quote(k, safe="").encode() + b"=" + quote(v, safe="").encode() for k, v in items)


def replace_field(data: bytes, name: bytes, value: bytes | None) -> bytes:
    """The form with one field's decoded value replaced (None removes the field)."""
    items = [(k, value if k == name else v) for k, v in pairs(data)]
    return join([(k, v) for k, v in items if v is not None])


@functools.cache
def chain(name: str = "unionpay") -> SigningChain:
    """A throwaway root -> middle -> leaf chain per name, generated once per test session."""
    return generate_chain()


def account(
    name: str = "shop", provider: UnionPayProvider = PROVIDER, **settings: Any
) -> Account[UnionPaySettings]:
    """A UnionPay account trusting chain() (root, middle, and its leaf for 5.0.0), merId MER_ID."""
    values: dict[str, Any] = {"mer_id": MER_ID, **chain().account_settings()}
    values.update(settings)
    return Account(name, provider, UnionPaySettings(**values))


def vector_account(**settings: Any) -> Account[UnionPaySettings]:
    """The account of the vectors: UnionPay's test environment, merId 777290058167151, pinned clock."""
    values: dict[str, Any] = {"mer_id": VECTOR_MER_ID, "environment": "test"}
    values.update(settings)
    return Account("sandbox", PINNED, UnionPaySettings(**values))


def notify(**fields: Any) -> bytes:
    """A consume notification signed by chain()'s leaf; keyword arguments as make_notify's."""
    values: dict[str, Any] = {"mer_id": MER_ID, "order_id": ORDER_ID}
    values.update(fields)
    return make_notify(chain(), **values)


def parse(
    data: bytes,
    acct: Account[UnionPaySettings] | None = None,
    *,
    channel: str = "notify",
    method: str = "POST",
) -> PaymentResult | UnhandledEvent:
    """Run one request through the account's provider: a GET carries `data` as its query."""
    acct = acct or account()
    get = method == "GET"
    request = InboundRequest(method, channel, query=data if get else b"", body=b"" if get else data)
    parsed = acct.provider.parse(request, acct)
    assert isinstance(parsed, PaymentResult | UnhandledEvent)  # one result: UnionPay sends no batches
    return parsed


def result(data: bytes, acct: Account[UnionPaySettings] | None = None, **kwargs: Any) -> PaymentResult:
    """parse(), which must give a PaymentResult."""
    parsed = parse(data, acct, **kwargs)
    assert isinstance(parsed, PaymentResult), parsed
    return parsed
