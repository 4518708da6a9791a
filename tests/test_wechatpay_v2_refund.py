"""Refund notifications: AES-256-ECB with md5(API key), strict PKCS#7, the account's ids, and the
refund status mapping."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from _wechatpay_v2 import APPID, MCH_ID, account, key, parse, refund
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from paynotify_wechatpay._v2_refund_crypto import pkcs7_pad, pkcs7_unpad, refund_key
from paynotify_wechatpay._xml import to_xml
from paynotify_wechatpay.testing import encrypt_v2_req_info, make_v2_refund_notify, sign_v2

from paynotify import BEIJING, Kind, MalformedNotification, Status, VerificationError, make_event_id

REQ_INFO = re.compile(rb"<req_info><!\[CDATA\[(.*?)\]\]></req_info>")


def with_req_info(body: bytes, req_info: str | bytes) -> bytes:
    value = req_info.encode() if isinstance(req_info, str) else req_info
    return REQ_INFO.sub(b"<req_info><![CDATA[" + value.replace(b"\\", b"\\\\") + b"]]></req_info>", body)


def raw_encrypt(data: bytes, api_key: str | None = None) -> str:
    """AES-256-ECB without any padding added: for crafting bad padding on purpose."""
    encryptor = Cipher(algorithms.AES(refund_key((api_key or key()).encode())), modes.ECB()).encryptor()  # noqa: S305
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


INNER = {
    "out_refund_no": "refund-1",
    "out_trade_no": "order-1",
    "refund_fee": "1000",
    "refund_id": "50300000000000000000000000001",
    "refund_status": "SUCCESS",
    "settlement_refund_fee": "1000",
    "total_fee": "8888",
    "transaction_id": "4200000000000000000000000001",
}
"""Every field WeChat Pay always puts in req_info, and no more."""


def test_refund_key_is_lower_hex_md5_of_the_api_key() -> None:
    vector_key = b"OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk"
    assert refund_key(vector_key) == hashlib.md5(vector_key).hexdigest().encode()  # noqa: S324
    assert len(refund_key(key().encode())) == 32
    assert refund_key(key().encode()).decode() == refund_key(key().encode()).decode().lower()
    assert account().settings.refund_aes_key == refund_key(key().encode())


def test_refund_success_normalizes() -> None:
    result = parse(refund(success_time="2024-02-29 23:59:59"))
    assert (result.kind, result.status, result.provider_status) == (Kind.REFUND, Status.SUCCEEDED, "SUCCESS")
    assert (result.order_id, result.refund_id) == ("order-1", "refund-1")
    assert result.provider_refund_id is not None
    assert result.provider_refund_id.startswith("50300")
    assert result.transaction_id is not None
    assert len(result.transaction_id) == 28
    assert result.amount == Decimal("88.88")
    assert result.refund_amount == Decimal("10.00")
    assert str(result.refund_amount) == "10.00"
    assert result.refunded_at == datetime(2024, 2, 29, 23, 59, 59, tzinfo=BEIJING)
    assert result.paid_at is None
    assert result.payer_id is None
    assert (result.app_id, result.merchant_id) == (APPID, MCH_ID)
    assert "req_info" not in result.raw
    assert result.raw["refund_recv_accout"] == "支付用户的零钱"
    assert result.raw["nonce_str"]  # outer fields are kept beside the decrypted ones


@pytest.mark.parametrize(
    ("refund_status", "status"),
    [
        ("SUCCESS", Status.SUCCEEDED),
        ("CHANGE", Status.FAILED),
        ("REFUNDCLOSE", Status.CLOSED),
    ],
)
def test_refund_status_mapping(refund_status: str, status: Status) -> None:
    result = parse(refund(refund_status=refund_status))
    assert (result.kind, result.status, result.provider_status) == (Kind.REFUND, status, refund_status)
    assert (result.refunded_at is not None) == (status is Status.SUCCEEDED)


def test_refunded_at_only_for_a_successful_refund() -> None:
    result = parse(refund(refund_status="CHANGE", success_time="2024-01-01 00:00:00"))
    assert result.refunded_at is None
    assert result.raw["success_time"] == "2024-01-01 00:00:00"


def test_event_id_is_stable_across_retries_and_distinct_per_refund() -> None:
    first, retry = parse(refund()), parse(refund())
    assert first.raw["nonce_str"] != retry.raw["nonce_str"]
    assert first.event_id == retry.event_id
    second_refund = parse(refund(out_refund_no="refund-2", refund_fee=500))
    closed = parse(refund(refund_status="REFUNDCLOSE"))
    payment_like = make_event_id("shop", "payment", first.transaction_id, None, "SUCCESS")
    assert len({first.event_id, second_refund.event_id, closed.event_id, payment_like}) == 4
    assert first.event_id == make_event_id("shop", "refund", first.transaction_id, "refund-1", "SUCCESS")


def test_wrong_key_is_refused_as_verification() -> None:
    with pytest.raises(VerificationError, match="does not decrypt"):
        parse(refund(api_key=key("someone-else")))


def test_plaintext_that_is_not_root_xml_is_refused_as_verification() -> None:
    # Correct key and padding but garbage inside: what a wrong key yields 1 time in 256.
    for plaintext in (b"hello", b"<xml><a>1</a></xml>", b"\xff\xfe" * 20, b""):
        body = with_req_info(refund(), encrypt_v2_req_info(plaintext, key()))
        with pytest.raises(VerificationError, match="does not decrypt"):
            parse(body)


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00" * 16,  # pad length 0
        b"A" * 15 + b"\x11",  # pad length 17
        b"A" * 15 + b"\xff",
        b"A" * 13 + b"\x04\x03\x03",  # claims 3, the third-last byte is 4
        b"A" * 12 + b"\x03\x04\x04\x04",  # claims 4, first pad byte is 3
        b"A" * 8 + b"\x01" + b"\x08" * 7,  # claims 8, one byte of eight is wrong
        b"\x0f" + b"\x10" * 15,  # claims 16, one byte (the 1st) is 15
    ],
)
def test_bad_pkcs7_padding_is_refused(tail: bytes) -> None:
    plaintext = to_xml(INNER, "root").encode()
    plaintext += b" " * (-len(plaintext) % 16)  # whole blocks, then the crafted last block
    body = with_req_info(refund(), raw_encrypt(plaintext + tail))
    with pytest.raises(VerificationError, match="PKCS#7"):
        parse(body)


def test_full_block_of_padding_is_accepted() -> None:
    # Whole blocks by a longer value (nothing may follow </root>).
    filler = ""
    while len(to_xml({**INNER, "refund_recv_accout": filler}, "root").encode()) % 16:
        filler += "x"
    plaintext = to_xml({**INNER, "refund_recv_accout": filler}, "root").encode()
    assert len(pkcs7_pad(plaintext)) == len(plaintext) + 16
    body = with_req_info(refund(), raw_encrypt(plaintext + b"\x10" * 16))
    assert parse(body).refund_id == "refund-1"


def test_pkcs7_unpad_is_strict() -> None:
    assert pkcs7_unpad(b"A" * 15 + b"\x01") == b"A" * 15
    assert pkcs7_unpad(b"\x10" * 16) == b""
    assert pkcs7_unpad(b"B" * 16 + b"A" * 14 + b"\x02\x02") == b"B" * 16 + b"A" * 14
    for bad in (b"", b"A" * 15, b"A" * 17, b"A" * 15 + b"\x00", b"A" * 14 + b"\x01\x02", b"\x11" * 16):
        with pytest.raises(ValueError, match=r"blocks|padding"):
            pkcs7_unpad(bad)
    for size in range(40):
        data = bytes(range(size))
        assert pkcs7_unpad(pkcs7_pad(data)) == data


@pytest.mark.parametrize(
    ("req_info", "match"),
    [
        ("not base64!", "not standard base64"),
        ("QUJD\nREVG", "not standard base64"),  # no line breaks
        ("QUJDREVG", "not a whole number of AES blocks"),  # 6 bytes
        ("测试", "not standard base64"),
        (base64.b64encode(b"x" * 17).decode(), "17 bytes"),
    ],
)
def test_req_info_that_is_not_aes_ciphertext_is_malformed(req_info: str, match: str) -> None:
    with pytest.raises(MalformedNotification, match=match):
        parse(with_req_info(refund(), req_info))


def test_empty_req_info_is_malformed() -> None:
    with pytest.raises(MalformedNotification, match="no req_info"):
        parse(with_req_info(refund(), b""))


@pytest.mark.parametrize(("name", "value"), [("appid", "wx0000000000000002"), ("mch_id", "1900000002")])
def test_refund_for_another_merchant_is_refused(name: str, value: str) -> None:
    body = refund(outer={name: value})
    with pytest.raises(VerificationError, match=f"{name} '{value}', this account is {name} '"):
        parse(body)


@pytest.mark.parametrize("name", ["appid", "mch_id"])
def test_refund_without_merchant_ids_is_malformed(name: str) -> None:
    with pytest.raises(MalformedNotification, match=f"no {name}"):
        parse(refund(outer={name: None}))


def test_refund_return_code_fail_is_refused() -> None:
    with pytest.raises(MalformedNotification, match="return_code 'FAIL'"):
        parse(refund(outer={"return_code": "FAIL", "return_msg": "error"}))


def test_a_sign_on_a_refund_notification_must_verify() -> None:
    body = refund()
    fields = dict(re.findall(r"<(\w+)><!\[CDATA\[(.*?)\]\]></\1>", body.decode()))
    good = sign_v2(fields, key())
    assert parse(body.replace(b"</xml>", f"<sign>{good}</sign></xml>".encode())).refund_id == "refund-1"
    with pytest.raises(VerificationError):
        parse(body.replace(b"</xml>", b"<sign>" + b"0" * 32 + b"</sign></xml>"))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("refund_fee", "10.00", "refund_fee is '10.00', not a whole number of fen"),
        ("total_fee", "-1", "total_fee is '-1'"),
        ("total_fee", None, "has no total_fee"),
        ("refund_fee", None, "has no refund_fee"),
        ("refund_status", None, "has no refund_status"),
        ("out_refund_no", "", "has no out_refund_no"),
        ("out_trade_no", "", "has no out_trade_no"),
        (
            "success_time",
            "20240101120000",
            "success_time is '20240101120000', not a yyyy-MM-dd HH:mm:ss time",
        ),
        ("success_time", "2024-02-30 12:00:00", "success_time"),
        ("success_time", "2024-01-01 12:00:00.123", "success_time"),
    ],
)
def test_bad_decrypted_fields_are_malformed_naming_the_field(
    field: str, value: str | None, match: str
) -> None:
    changed: dict[str, Any] = {field: value}
    with pytest.raises(MalformedNotification, match=match):
        parse(refund(**changed))


def test_decrypted_fields_win_over_outer_ones_in_raw() -> None:
    body = refund(outer={"sub_mch_id": "1900000109", "transaction_id": "outer-says-this"})
    result = parse(body)
    assert result.raw["sub_mch_id"] == "1900000109"
    assert result.raw["transaction_id"] == result.transaction_id != "outer-says-this"


def test_service_provider_refund() -> None:
    sp = account("sp", appid="wx00000000000000sp", mch_id="1900000000")
    body = make_v2_refund_notify(
        key(),
        appid="wx00000000000000sp",
        mch_id="1900000000",
        out_trade_no="o-9",
        out_refund_no="r-9",
        total_fee=1,
        refund_fee=1,
        outer={"sub_appid": "wx0000000000000sub", "sub_mch_id": "1900000109"},
    )
    result = parse(body, sp)
    assert (result.app_id, result.merchant_id, result.raw["sub_mch_id"]) == (
        "wx00000000000000sp",
        "1900000000",
        "1900000109",
    )
    assert result.amount == result.refund_amount == Decimal("0.01")
