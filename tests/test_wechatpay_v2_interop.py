"""Interoperability with wechatpy: each side verifies the other's v2 signatures, and wechatpy
decrypts the refund notifications we encrypt (and agrees with us on the real refund vector)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from _wechatpay_v2 import (
    APPID,
    MCH_ID,
    REFUND_APPID,
    REFUND_MCH_ID,
    REFUND_VECTOR,
    account,
    key,
    parse,
    payment,
    refund,
    refund_account,
    vector,
    vector_key,
)
from paynotify_wechatpay._xml import parse_flat_xml
from paynotify_wechatpay.testing import sign_v2

from paynotify import MalformedNotification, VerificationError

wechatpy_pay = pytest.importorskip(
    "wechatpy.pay", reason="wechatpy is not installed (pip install wechatpy) - interop not checked"
)
from wechatpy.exceptions import InvalidSignatureException  # noqa: E402
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac, dict_to_xml  # noqa: E402

FIELDS = {
    "appid": APPID,
    "mch_id": MCH_ID,
    "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    "out_trade_no": "order-1",
    "result_code": "SUCCESS",
    "return_code": "SUCCESS",
    "time_end": "20240101120000",
    "total_fee": "8888",
    "transaction_id": "4200000000202401010000000001",
    "attach": "测试 a&b",
    "openid": "oUpF8uMEb4qRXf22hE3X68TekukE",
}


def sdk(api_key: str | None = None, appid: str = APPID, mch_id: str = MCH_ID) -> Any:
    return wechatpy_pay.WeChatPay(appid=appid, api_key=api_key or key(), mch_id=mch_id)


def test_both_compute_the_same_signatures() -> None:
    assert calculate_signature(FIELDS, key()) == sign_v2(FIELDS, key(), "MD5")
    assert calculate_signature_hmac(FIELDS, key()) == sign_v2(FIELDS, key(), "HMAC-SHA256")


def test_wechatpy_signed_md5_notification_verifies_with_us() -> None:
    body = dict_to_xml(FIELDS, calculate_signature(FIELDS, key())).encode()
    result = parse(body)
    assert result.is_paid
    assert result.raw["attach"] == "测试 a&b"


def test_wechatpy_signed_hmac_notification_verifies_with_an_hmac_account() -> None:
    body = dict_to_xml(FIELDS, calculate_signature_hmac(FIELDS, key())).encode()
    assert parse(body, account(sign_type="HMAC-SHA256")).is_paid
    with pytest.raises(VerificationError):
        parse(body)  # the MD5 account does not accept it


def test_our_md5_notification_verifies_with_wechatpy() -> None:
    body = payment(attach="测试 附加")
    data = sdk().parse_payment_result(body.decode())
    assert data["out_trade_no"] == "order-1"
    assert data["total_fee"] == 8888
    assert data["sign"] == parse_flat_xml(body)["sign"]
    with pytest.raises(InvalidSignatureException):
        sdk().parse_payment_result(body.replace(b"8888", b"8889").decode())


def test_our_refund_notification_decrypts_with_wechatpy() -> None:
    for refund_fee in (1, 1000, 8888):  # plaintexts of different lengths, so different pad lengths
        body = refund(refund_fee=refund_fee, refund_status="SUCCESS")
        data = sdk().parse_refund_notify_result(body.decode())
        ours = parse(body)
        assert data["out_refund_no"] == ours.refund_id == "refund-1"
        assert data["refund_fee"] == refund_fee
        assert data["refund_status"] == "SUCCESS"
        assert {k: str(v) for k, v in data.items()} == {
            k: v for k, v in ours.raw.items() if k not in ("return_code", "appid", "mch_id", "nonce_str")
        }


def test_wechatpy_and_we_agree_on_the_refund_vector() -> None:
    body = vector(REFUND_VECTOR)
    data = sdk(vector_key(REFUND_VECTOR), REFUND_APPID, REFUND_MCH_ID).parse_refund_notify_result(
        body.decode()
    )
    result = parse(body, refund_account())
    assert data["out_refund_no"] == result.refund_id
    assert data["refund_id"] == result.provider_refund_id
    assert data["success_time"] == result.raw["success_time"]


def test_wechatpy_refund_encryption_pads_to_32_byte_blocks_which_we_refuse() -> None:
    # wechatpy's RefundCrypto.encrypt reuses its message-crypto PKCS7Encoder (32-byte blocks), so a
    # plaintext 1..15 bytes short of a 32-byte boundary gets a pad of 17..31: not PKCS#7 for AES,
    # never sent by WeChat Pay (Java's AES/ECB/PKCS5Padding and PHP's openssl would reject it too).
    from wechatpy.crypto import RefundCrypto
    from wechatpy.utils import to_text

    sdk_crypto = RefundCrypto(hashlib.md5(key().encode()).hexdigest().encode())  # noqa: S324
    outcomes = set()
    for size in range(32, 64):
        inner = "<root><out_refund_no><![CDATA[" + "r" * size + "]]></out_refund_no></root>"
        req_info = to_text(sdk_crypto.encrypt(inner))
        body = refund().split(b"<req_info>")[0] + f"<req_info>{req_info}</req_info></xml>".encode()
        pad = 32 - len(inner.encode()) % 32
        if pad <= 16:
            with pytest.raises(MalformedNotification, match="no refund_status"):  # decrypted; fields missing
                parse(body)
            outcomes.add("accepted")
        else:
            with pytest.raises(VerificationError, match="PKCS#7"):
                parse(body)
            outcomes.add("refused")
    assert outcomes == {"accepted", "refused"}
