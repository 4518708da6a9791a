"""Shared helpers of the test_wechatpay_v2_* modules: throwaway API keys, the real vectors, and a
provider call without the pipeline. Nothing here fakes verification."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from paynotify_wechatpay import SignType, WeChatPayV2Provider, WeChatPayV2Settings
from paynotify_wechatpay.testing import generate_api_key, make_v2_payment_notify, make_v2_refund_notify

from paynotify import Account, InboundRequest, PaymentResult

VECTORS = Path(__file__).parent / "vectors" / "wechatpay"

SP_VECTOR = "v2_notify_sp_md5"
SP_APPID = "wxf06ac118ca3d9533"
SP_MCH_ID = "1495589652"
REFUND_VECTOR = "v2_refund_notify"
REFUND_APPID = "wx4f4bc4dec97d474b"
REFUND_MCH_ID = "12345678"

APPID = "wx0000000000000001"
MCH_ID = "1900000001"
PROVIDER = WeChatPayV2Provider()


@functools.cache
def _key(name: str) -> str:
    return generate_api_key()


def key(name: str = "wechat") -> str:
    """A throwaway API key per name, generated once per test session."""
    return _key(name)


def vector(name: str) -> bytes:
    return (VECTORS / f"{name}.xml").read_bytes()


def vector_key(name: str) -> str:
    return (VECTORS / f"{name}.apikey").read_text()


def account(
    name: str = "shop", *, sign_type: SignType = "MD5", api_key: str | None = None, **settings: Any
) -> Account[WeChatPayV2Settings]:
    values: dict[str, Any] = {
        "appid": APPID,
        "mch_id": MCH_ID,
        "api_key": api_key or key(),
        "sign_type": sign_type,
    }
    values.update(settings)
    return Account(name, PROVIDER, WeChatPayV2Settings(**values))


def sp_account(**settings: Any) -> Account[WeChatPayV2Settings]:
    values: dict[str, Any] = {"appid": SP_APPID, "mch_id": SP_MCH_ID, "api_key": vector_key(SP_VECTOR)}
    values.update(settings)
    return account("sp", **values)


def refund_account(**settings: Any) -> Account[WeChatPayV2Settings]:
    values: dict[str, Any] = {
        "appid": REFUND_APPID,
        "mch_id": REFUND_MCH_ID,
        "api_key": vector_key(REFUND_VECTOR),
    }
    values.update(settings)
    return account("refunds", **values)


def parse(body: bytes, acct: Account[WeChatPayV2Settings] | None = None) -> PaymentResult:
    """Run one POST body through WeChatPayV2Provider.parse: a payment or a refund."""
    parsed = PROVIDER.parse(InboundRequest("POST", "notify", body=body), acct or account())
    assert isinstance(parsed, PaymentResult), parsed
    return parsed


def payment(
    *,
    sign_type: SignType = "MD5",
    out_trade_no: str = "order-1",
    api_key: str | None = None,
    appid: str = APPID,
    mch_id: str = MCH_ID,
    **extra: Any,
) -> bytes:
    """A genuine payment notification for `account()` (same ids, same key unless told)."""
    return make_v2_payment_notify(
        api_key or key(), appid=appid, mch_id=mch_id, out_trade_no=out_trade_no, sign_type=sign_type, **extra
    )


def refund(
    *,
    out_trade_no: str = "order-1",
    out_refund_no: str = "refund-1",
    total_fee: int = 8888,
    refund_fee: int = 1000,
    api_key: str | None = None,
    **extra: Any,
) -> bytes:
    """A genuine encrypted refund notification for `account()`."""
    return make_v2_refund_notify(
        api_key or key(),
        appid=APPID,
        mch_id=MCH_ID,
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        total_fee=total_fee,
        refund_fee=refund_fee,
        **extra,
    )
