"""The real WeChat Pay v2 vectors (tests/vectors/wechatpay, see PROVENANCE.md): they verify or
decrypt untouched, and any change to a signed field, or a wrong key, is refused."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from decimal import Decimal

import pytest
from _wechatpay_v2 import (
    REFUND_APPID,
    REFUND_MCH_ID,
    REFUND_VECTOR,
    SP_APPID,
    SP_MCH_ID,
    SP_VECTOR,
    key,
    parse,
    refund_account,
    sp_account,
    vector,
    vector_key,
)

from paynotify import BEIJING, Kind, MalformedNotification, Source, Status, VerificationError, make_event_id

SP = vector(SP_VECTOR)
REFUND = vector(REFUND_VECTOR)
ELEMENT = re.compile(rb"<(?!xml>)(\w+)>(<!\[CDATA\[)?(.*?)(\]\]>)?</\1>")  # the children of <xml>
SP_FIELDS = [m.group(1).decode() for m in ELEMENT.finditer(SP)]


def with_value(body: bytes, name: str, value: bytes) -> bytes:
    """`body` with the value of element `name` replaced (its CDATA wrapping kept as it was)."""
    match = next(m for m in ELEMENT.finditer(body) if m.group(1) == name.encode())
    return body[: match.start(3)] + value + body[match.end(3) :]


def without(body: bytes, name: str) -> bytes:
    match = next(m for m in ELEMENT.finditer(body) if m.group(1) == name.encode())
    return body[: match.start()] + body[match.end() :]


def value_of(body: bytes, name: str) -> bytes:
    return next(m.group(3) for m in ELEMENT.finditer(body) if m.group(1) == name.encode())


def test_vectors_are_the_shared_ones_byte_for_byte() -> None:
    assert SP.startswith(b"<xml><appid>")
    assert SP.endswith(b"</transaction_id></xml>\n")
    assert b"<total_fee>10</total_fee>" in SP  # the one plain (non-CDATA) value
    assert REFUND.startswith(b"<xml>\n<return_code>SUCCESS</return_code>\n")
    assert REFUND.endswith(b"</xml>\n")
    assert len(vector_key(SP_VECTOR)) == len(vector_key(REFUND_VECTOR)) == 32
    assert len(SP_FIELDS) == 20
    assert "sign_type" not in SP_FIELDS


def test_sp_vector_verifies_and_normalizes() -> None:
    result = parse(SP, sp_account())
    assert (result.provider, result.account) == ("wechatpay-v2", "sp")
    assert (result.kind, result.status, result.provider_status) == (Kind.PAYMENT, Status.SUCCEEDED, "SUCCESS")
    assert result.is_paid
    assert result.source is Source.NOTIFY
    assert result.order_id == "0001_2018060615095472"
    assert result.transaction_id == "4200000122201806113815186236"
    assert result.amount == Decimal("0.10")
    assert str(result.amount) == "0.10"
    assert result.currency == "CNY"
    assert result.paid_at == datetime(2018, 6, 11, 18, 20, 29, tzinfo=BEIJING)
    assert result.paid_at is not None
    assert result.paid_at.utcoffset() is not None
    assert result.payer_id == "oJb7cwYJW-YC6ynUtvVLFm9UXfgs"  # openid wins over sub_openid
    assert (result.app_id, result.merchant_id) == (SP_APPID, SP_MCH_ID)
    assert result.refund_id is None
    assert result.refund_amount is None
    assert result.refunded_at is None
    assert result.event_id == make_event_id("sp", "payment", "4200000122201806113815186236", None, "SUCCESS")
    # Every received field is kept, the service-provider ones and sign included.
    assert set(result.raw) == set(SP_FIELDS)
    assert result.raw["sub_mch_id"] == "1495746312"
    assert result.raw["sub_openid"] == "oyA310LEnY_JW_-BDHVJguSpFyKQ"
    assert result.raw["total_fee"] == "10"
    assert result.raw["sign"] == "817DDB68B937F07E8EE01CA442EAD0DA"


@pytest.mark.parametrize("name", [n for n in SP_FIELDS if n not in ("sign", "return_code")])
def test_changing_any_signed_field_of_the_sp_vector_fails(name: str) -> None:
    original = value_of(SP, name)
    last = original[-1:]
    flipped = original[:-1] + (b"X" if last != b"X" else b"Y")
    for changed in (flipped, original + b"0", original[:-1], b""):
        if changed == original:
            continue
        with pytest.raises(VerificationError):
            parse(with_value(SP, name, changed), sp_account())
    with pytest.raises(VerificationError):
        parse(without(SP, name), sp_account())


def test_changing_return_code_of_the_sp_vector_is_refused() -> None:
    # return_code is signed too, but anything but SUCCESS is refused before the signature is read.
    with pytest.raises(MalformedNotification, match="return_code"):
        parse(with_value(SP, "return_code", b"SUCCESs"), sp_account())


@pytest.mark.parametrize("sign", [b"817DDB68B937F07E8EE01CA442EAD0DB", b"917DDB68B937F07E8EE01CA442EAD0DA"])
def test_changed_sign_of_the_sp_vector_fails(sign: bytes) -> None:
    with pytest.raises(VerificationError, match="does not match"):
        parse(with_value(SP, "sign", sign), sp_account())


def test_lower_case_sign_of_the_sp_vector_verifies() -> None:
    # Hex is case-insensitive: the MAC is the same value; the received sign is upper-cased first.
    lower = with_value(SP, "sign", value_of(SP, "sign").lower())
    assert parse(lower, sp_account()).transaction_id == "4200000122201806113815186236"


def test_sp_vector_with_another_key_or_algorithm_fails() -> None:
    with pytest.raises(VerificationError, match="MD5 sign does not match"):
        parse(SP, sp_account(api_key=key()))
    with pytest.raises(VerificationError, match="HMAC-SHA256"):
        parse(SP, sp_account(sign_type="HMAC-SHA256"))


def test_sp_vector_with_a_sign_type_added_after_signing_fails() -> None:
    # sign_type is part of the signed content: adding it (even the right value) breaks the sign.
    body = SP.replace(b"<sign>", b"<sign_type><![CDATA[MD5]]></sign_type><sign>")
    with pytest.raises(VerificationError, match="does not match"):
        parse(body, sp_account())


def test_sp_vector_with_an_extra_field_fails_but_an_empty_one_does_not_count() -> None:
    with pytest.raises(VerificationError):
        parse(SP.replace(b"</xml>", b"<attach>x</attach></xml>"), sp_account())
    # Empty values are not signed (WeChat Pay's rule), so an empty element changes nothing.
    result = parse(SP.replace(b"</xml>", b"<attach></attach><device_info/></xml>"), sp_account())
    assert result.raw["attach"] == result.raw["device_info"] == ""


def test_refund_vector_decrypts_and_normalizes() -> None:
    result = parse(REFUND, refund_account())
    assert (result.kind, result.status, result.provider_status) == (Kind.REFUND, Status.SUCCEEDED, "SUCCESS")
    assert not result.is_paid
    assert result.order_id == "2020010418301551404339261814"
    assert result.transaction_id == "4200000483202001042069747825"
    assert result.refund_id == "1234"
    assert result.provider_refund_id == "50300103182020010413419046597"
    assert result.amount == Decimal("0.01")
    assert result.refund_amount == Decimal("0.01")
    assert result.currency == "CNY"
    assert result.refunded_at == datetime(2020, 1, 4, 18, 34, 24, tzinfo=BEIJING)
    assert result.paid_at is None
    assert (result.app_id, result.merchant_id) == (REFUND_APPID, REFUND_MCH_ID)
    assert result.event_id == make_event_id(
        "refunds", "refund", "4200000483202001042069747825", "1234", "SUCCESS"
    )
    assert result.raw == {
        "return_code": "SUCCESS",
        "appid": REFUND_APPID,
        "mch_id": REFUND_MCH_ID,
        "nonce_str": "c1c237efc87ee8dfcb3f9124b63a4d94",
        "out_refund_no": "1234",
        "out_trade_no": "2020010418301551404339261814",
        "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_fee": "1",
        "refund_id": "50300103182020010413419046597",
        "refund_recv_accout": "招商银行信用卡8915",
        "refund_request_source": "API",
        "refund_status": "SUCCESS",
        "settlement_refund_fee": "1",
        "settlement_total_fee": "1",
        "success_time": "2020-01-04 18:34:24",
        "total_fee": "1",
        "transaction_id": "4200000483202001042069747825",
    }


def test_refund_vector_with_another_key_is_refused() -> None:
    with pytest.raises(VerificationError, match="does not decrypt under this account's API key"):
        parse(REFUND, refund_account(api_key=key()))


@pytest.mark.parametrize(("name", "value"), [("appid", b"wx4f4bc4dec97d474c"), ("mch_id", b"12345679")])
def test_refund_vector_for_another_merchant_is_refused(name: str, value: bytes) -> None:
    with pytest.raises(VerificationError, match=f"{name} '{value.decode()}'.*this account is {name}"):
        parse(with_value(REFUND, name, value), refund_account())


def test_refund_vector_with_any_changed_ciphertext_byte_is_refused() -> None:
    req_info = value_of(REFUND, "req_info")
    ciphertext = base64.b64decode(req_info)
    for index in range(len(ciphertext)):
        changed = bytearray(ciphertext)
        changed[index] ^= 0x01
        body = with_value(REFUND, "req_info", base64.b64encode(bytes(changed)))
        with pytest.raises(VerificationError):
            parse(body, refund_account())


def test_refund_vector_with_blocks_dropped_is_refused() -> None:
    ciphertext = base64.b64decode(value_of(REFUND, "req_info"))
    for cut in (16, len(ciphertext) - 16):  # first block gone; last block (the padding) gone
        shortened = ciphertext[16:] if cut == 16 else ciphertext[:cut]
        with pytest.raises(VerificationError):
            parse(with_value(REFUND, "req_info", base64.b64encode(shortened)), refund_account())
