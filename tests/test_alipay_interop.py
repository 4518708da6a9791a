"""Interoperability with python-alipay-sdk (import name `alipay`): each side verifies the other's
signatures, and the SDK agrees with us on the real sandbox vector."""

from __future__ import annotations

from typing import Any

import pytest
from _alipay_keys import APP_ID, VECTOR_APP_ID, account, key, pairs, parse, pem, vector, vector_key
from paynotify_alipay.testing import make_notify, private_key_pem

from paynotify import VerificationError

sdk = pytest.importorskip(
    "alipay",
    reason="python-alipay-sdk is not installed (pip install python-alipay-sdk) - interop not checked",
)


def make_sdk(sign_type: str = "RSA2", app_id: str = APP_ID, public: str | None = None) -> Any:
    return sdk.AliPay(
        appid=app_id,
        app_private_key_string=private_key_pem(key()),
        alipay_public_key_string=public or pem(),
        sign_type=sign_type,
    )


def decoded(data: bytes) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in pairs(data)}


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
def test_sdk_verifies_our_notifications(sign_type: str) -> None:
    fields = decoded(
        make_notify(key(), app_id=APP_ID, out_trade_no="order-1", sign_type=sign_type, subject="测试 A+B")  # type: ignore[arg-type]
    )
    signature = fields.pop("sign")
    assert make_sdk(sign_type).verify(dict(fields), signature) is True
    tampered = dict(fields, total_amount="0.01")
    assert make_sdk(sign_type).verify(tampered, signature) is False


def test_sdk_verifies_the_real_vector_like_we_do() -> None:
    fields = decoded(vector("notify_trade_success.form"))
    signature = fields.pop("sign")
    assert make_sdk(app_id=VECTOR_APP_ID, public=vector_key()).verify(fields, signature) is True


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
def test_we_verify_notifications_signed_by_the_sdk(sign_type: str) -> None:
    fields = {
        "app_id": APP_ID,
        "charset": "utf-8",
        "notify_type": "trade_status_sync",
        "notify_id": "2024052000222123105012345678901234",
        "notify_time": "2024-05-20 12:31:05",
        "out_trade_no": "order-9",
        "trade_no": "2024052022001499160501589436",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "12.30",
        "subject": "yansongda+测试 - 1",
        "passback_params": "a%3D1%26b%3D2",
        "version": "1.0",
    }
    # sign_data signs exactly what it is given, so sign_type is appended afterwards, as Alipay does.
    body = make_sdk(sign_type).sign_data(dict(fields)) + f"&sign_type={sign_type}"
    result = parse(body.encode("ascii"), account(sign_type=sign_type, seller_id=None))
    assert result.order_id == "order-9"
    assert result.raw["subject"] == "yansongda+测试 - 1"
    assert result.raw["passback_params"] == "a%3D1%26b%3D2"
    other = "RSA" if sign_type == "RSA2" else "RSA2"
    with pytest.raises(VerificationError):
        parse(body.encode("ascii"), account(sign_type=other, seller_id=None))
