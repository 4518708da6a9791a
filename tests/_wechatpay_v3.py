"""Shared helpers of the test_wechatpay_v3_* modules: throwaway keys (made once per session), the
real vector, a provider with a pinned clock, and notifications for one account that trusts a
platform certificate and a public key at once. Nothing here fakes verification."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from paynotify_wechatpay import WeChatPayV3Provider, WeChatPayV3Settings
from paynotify_wechatpay.testing import (
    V3SigningKey,
    generate_apiv3_key,
    generate_v3_platform_certificate,
    generate_v3_public_key,
    make_v3_refund_notify,
    make_v3_transaction_notify,
)

from paynotify import Account, InboundRequest, PaymentResult, UnhandledEvent

VECTOR = Path(__file__).parent / "vectors" / "wechatpay" / "v3_payscore"
VECTOR_TIMESTAMP = 1624523846
VECTOR_SERIAL = "D7CE59D1F522D701"

NOW = 1_700_000_000
"""The pinned clock of PROVIDER, and the default timestamp of the notifications made here."""
MCHID = "1900000001"
APPID = "wx0000000000000001"
SP_MCHID = "1900000100"
SP_APPID = "wx00000000000000sp"
SUB_MCHID = "1900000109"
PROVIDER = WeChatPayV3Provider(clock=lambda: NOW)


@functools.cache
def certificate(name: str = "wechat") -> V3SigningKey:
    """A throwaway platform certificate per name."""
    return generate_v3_platform_certificate()


@functools.cache
def public_key(name: str = "wechat") -> V3SigningKey:
    """A throwaway WeChat Pay public key (PUB_KEY_ID_...) per name."""
    return generate_v3_public_key()


@functools.cache
def apiv3_key(name: str = "wechat") -> str:
    return generate_apiv3_key()


def settings(**overrides: Any) -> dict[str, Any]:
    """An account's settings: direct merchant, both key modes at once. None removes a setting."""
    values: dict[str, Any] = {
        "mchid": MCHID,
        "appid": APPID,
        "apiv3_key": apiv3_key(),
        **certificate().account_settings(),
        **public_key().account_settings(),
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def sp_settings(**overrides: Any) -> dict[str, Any]:
    """A service provider's account (sp_mchid / sp_appid), both key modes."""
    values: dict[str, Any] = {"mchid": None, "appid": None, "sp_mchid": SP_MCHID, "sp_appid": SP_APPID}
    values.update(overrides)
    return settings(**values)


def account(name: str = "shop", **overrides: Any) -> Account[WeChatPayV3Settings]:
    return Account(name, PROVIDER, WeChatPayV3Settings(**settings(**overrides)))


def sp_account(name: str = "sp", **overrides: Any) -> Account[WeChatPayV3Settings]:
    return Account(name, PROVIDER, WeChatPayV3Settings(**sp_settings(**overrides)))


def lower(headers: dict[str, str]) -> dict[str, str]:
    """Header names as an ASGI server hands them over (InboundRequest's are lower-case)."""
    return {name.lower(): value for name, value in headers.items()}


def request(notify: tuple[dict[str, str], bytes]) -> InboundRequest:
    headers, body = notify
    return InboundRequest("POST", "notify", lower(headers), body=body)


def parse(
    notify: tuple[dict[str, str], bytes], acct: Account[WeChatPayV3Settings] | None = None
) -> PaymentResult | UnhandledEvent:
    """Run one notification through WeChatPayV3Provider.parse (clock pinned to NOW); one result (a
    combined order's several go through `parse_all`)."""
    parsed = PROVIDER.parse(request(notify), acct or account())
    assert not isinstance(parsed, list), "a combined order: use parse_all"
    return parsed


def parse_all(
    notify: tuple[dict[str, str], bytes], acct: Account[WeChatPayV3Settings] | None = None
) -> list[PaymentResult]:
    parsed = PROVIDER.parse(request(notify), acct or account())
    assert isinstance(parsed, list)
    return parsed


def parse_result(
    notify: tuple[dict[str, str], bytes], acct: Account[WeChatPayV3Settings] | None = None
) -> PaymentResult:
    result = parse(notify, acct)
    assert isinstance(result, PaymentResult)
    return result


def payment(
    signer: V3SigningKey | None = None,
    *,
    out_trade_no: str = "order-1",
    key: str | None = None,
    timestamp: int = NOW,
    **extra: Any,
) -> tuple[dict[str, str], bytes]:
    """A genuine TRANSACTION notification for `account()`, signed with its certificate unless told."""
    values: dict[str, Any] = {"appid": APPID, "mchid": MCHID}
    values.update(extra)
    return make_v3_transaction_notify(
        signer or certificate(), key or apiv3_key(), out_trade_no=out_trade_no, timestamp=timestamp, **values
    )


def refund(
    signer: V3SigningKey | None = None,
    *,
    out_refund_no: str = "refund-1",
    refund_status: str = "SUCCESS",
    total: int = 8888,
    refund_fee: int = 1000,
    key: str | None = None,
    timestamp: int = NOW,
    **extra: Any,
) -> tuple[dict[str, str], bytes]:
    """A genuine REFUND notification for `account()`, signed with its public key unless told."""
    values: dict[str, Any] = {"mchid": MCHID, "out_trade_no": "order-1"}
    values.update(extra)
    return make_v3_refund_notify(
        signer or public_key(), key or apiv3_key(), out_refund_no=out_refund_no, total=total,
        refund=refund_fee, refund_status=refund_status, timestamp=timestamp, **values,
    )  # fmt: skip


def vector() -> tuple[dict[str, str], bytes]:
    """The real PAYSCORE notification: (headers as WeChat Pay sent them, exact body bytes)."""
    headers: dict[str, str] = json.loads((VECTOR / "headers.json").read_text())
    return headers, (VECTOR / "body.json").read_bytes()


def vector_settings(**overrides: Any) -> dict[str, Any]:
    """An account trusting the vector's platform certificate (its APIv3 key is 16 bytes: not used)."""
    values: dict[str, Any] = {
        "mchid": "1234567890",
        "appid": "054aa7d7a2a54ab5898df65bd96f001c",
        "apiv3_key": apiv3_key(),
        "platform_certificates": (VECTOR / "platform_cert.pem").read_text(),
    }
    values.update(overrides)
    return values
