"""Verified or decrypted is not enough: WeChat Pay v2 fields must have their documented shapes, and a
refund's req_info (AES-ECB, no MAC) must survive what block splicing breaks. All notifications
here are genuine: signed, or encrypted with the account's key by the testing helpers."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from _wechatpay_v2 import APPID, MCH_ID, key, parse, payment, refund
from paynotify_wechatpay._v2_refund_crypto import BLOCK, decrypt_req_info, refund_key
from paynotify_wechatpay._xml import parse_flat_xml
from paynotify_wechatpay.testing import encrypt_v2_req_info, make_v2_refund_notify

from paynotify import InvalidContent, MalformedNotification, VerificationError

REQ_INFO = re.compile(rb"<req_info><!\[CDATA\[(.*?)\]\]></req_info>")


# -- payments -----------------------------------------------------------------------------------

PAYMENT_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"total_fee": "+8888"}, "total_fee is '\\+8888', not a whole number of fen"),
    ({"total_fee": "88.88"}, "total_fee"),
    ({"total_fee": "８８"}, "total_fee"),  # noqa: RUF001 - full-width digits, which `\d` would take
    ({"cash_fee": "-1"}, "cash_fee"),
    ({"cash_fee": "1e3"}, "cash_fee"),
    ({"settlement_total_fee": "88.88"}, "settlement_total_fee"),
    ({"coupon_fee": "ten"}, "coupon_fee"),
    ({"transaction_id": "4200000000&x"}, "transaction_id is .*, not 1-32 digits"),
    ({"transaction_id": "1" * 33}, "transaction_id"),
    ({"out_trade_no": "order 1"}, "out_trade_no is 'order 1', not 1-32 letters, digits or _-|\\*"),
    ({"out_trade_no": "order@1"}, "out_trade_no"),
    ({"out_trade_no": "o" * 33}, "out_trade_no"),
    ({"result_code": "SOMETHING_NEW"}, "result_code is 'SOMETHING_NEW', not one of SUCCESS, FAIL"),
    ({"result_code": "success"}, "result_code"),
    ({"time_end": "2024-01-01 12:00:00"}, "time_end"),
    ({"time_end": "20240230120000"}, "time_end"),
    ({"transaction_id": None}, "has no transaction_id"),
]


@pytest.mark.parametrize(("fields", "match"), PAYMENT_REFUSED, ids=[m for _, m in PAYMENT_REFUSED])
def test_a_signed_payment_out_of_shape_is_refused_as_invalid_content(
    fields: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidContent, match=match) as info:
        parse(payment(**fields))
    error = info.value
    assert error.raw["sign"]  # the verified fields, for the record
    assert error.account == "shop"


def test_invalid_payment_content_carries_its_event_id() -> None:
    with pytest.raises(InvalidContent) as info:
        parse(payment(cash_fee="1.00"))
    assert info.value.event_id == parse(payment()).event_id


PAYMENT_ACCEPTED: list[dict[str, Any]] = [
    {"out_trade_no": "A-b_c|d*9" + "x" * 23},
    {"transaction_id": "9" * 32},
    {"total_fee": 0, "cash_fee": 0},
    {"settlement_total_fee": 8000, "coupon_fee": 888},
    {"result_code": "FAIL", "transaction_id": None, "total_fee": None, "time_end": None},
]


@pytest.mark.parametrize("fields", PAYMENT_ACCEPTED, ids=[repr(f) for f in PAYMENT_ACCEPTED])
def test_documented_payment_shapes_are_accepted(fields: dict[str, Any]) -> None:
    assert parse(payment(**fields)).order_id


# -- refunds: shapes and consistency --------------------------------------------------------------

REFUND_REFUSED: list[tuple[dict[str, Any], str]] = [
    (
        {"refund_status": "PROCESSING"},
        "refund_status is 'PROCESSING', not one of SUCCESS, CHANGE, REFUNDCLOSE",
    ),
    ({"refund_fee": 9999, "settlement_refund_fee": 9999}, "refund_fee 9999 is more than total_fee 8888"),
    ({"settlement_refund_fee": 1001}, "settlement_refund_fee 1001 is more than refund_fee 1000"),
    ({"settlement_total_fee": 8889}, "settlement_total_fee 8889 is more than total_fee 8888"),
    ({"settlement_refund_fee": "1e3"}, "settlement_refund_fee"),
    ({"settlement_total_fee": "-1"}, "settlement_total_fee"),
    ({"refund_id": "5030-0001"}, "refund_id is '5030-0001', not 1-32 digits"),
    ({"transaction_id": "42000x"}, "transaction_id"),
    ({"out_refund_no": "refund 1"}, "out_refund_no is 'refund 1', not 1-64 letters, digits or _-|\\*@"),
    ({"out_refund_no": "r" * 65}, "out_refund_no"),
    ({"out_trade_no": "order#1"}, "out_trade_no"),
    ({"refund_id": None}, "has no refund_id"),
    ({"transaction_id": None}, "has no transaction_id"),
    ({"settlement_refund_fee": None}, "has no settlement_refund_fee"),
]


@pytest.mark.parametrize(("fields", "match"), REFUND_REFUSED, ids=[m for _, m in REFUND_REFUSED])
def test_a_decrypted_refund_out_of_shape_or_inconsistent_is_refused(
    fields: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidContent, match=match) as info:
        parse(refund(**fields))
    assert info.value.raw["appid"] == APPID  # outer and decrypted fields, for the record
    assert "req_info" not in info.value.raw


def test_invalid_refund_content_carries_its_event_id() -> None:
    with pytest.raises(InvalidContent) as info:
        parse(refund(settlement_refund_fee=1001))
    assert info.value.event_id == parse(refund()).event_id


def test_documented_refund_shapes_are_accepted() -> None:
    result = parse(
        refund(out_refund_no="R-1_a|b*c@d" + "9" * 53, refund_fee=8888, settlement_refund_fee=8000)
    )
    assert result.refund_id == "R-1_a|b*c@d" + "9" * 53
    assert parse(refund(settlement_total_fee=None)).refund_amount is not None


@pytest.mark.parametrize(
    "plaintext",
    [
        b"<root><out_refund_no>r-1</out_refund_no></root>\n",
        b"<root><out_refund_no>r-1</out_refund_no></root><!-- after -->",
        b"<?xml version='1.0'?><root><out_refund_no>r-1</out_refund_no></root>",
        b" <root><out_refund_no>r-1</out_refund_no></root>",
    ],
)
def test_req_info_must_be_exactly_one_root_document(plaintext: bytes) -> None:
    # XML allows whitespace, comments and declarations around the root; WeChat Pay never sends them.
    body = make_v2_refund_notify(
        key(),
        appid=APPID,
        mch_id=MCH_ID,
        out_trade_no="order-1",
        out_refund_no="r-1",
        total_fee=1,
        refund_fee=1,
    )
    with pytest.raises(InvalidContent, match="not exactly one <root> document"):
        parse(_with_req_info(body, encrypt_v2_req_info(plaintext, key())))


def test_a_field_twice_in_req_info_is_refused() -> None:
    plaintext = _plaintext(refund())
    twice = plaintext.replace(b"</root>", b"<refund_fee><![CDATA[1]]></refund_fee></root>")
    with pytest.raises(VerificationError, match="<refund_fee> 2 times"):
        parse(_with_req_info(refund(), encrypt_v2_req_info(twice, key())))


# -- block splicing of two genuine refunds ---------------------------------------------------------


def _req_info(body: bytes) -> bytes:
    found = REQ_INFO.search(body)
    assert found is not None
    return base64.b64decode(found.group(1))


def _with_req_info(body: bytes, req_info: str) -> bytes:
    return REQ_INFO.sub(b"<req_info><![CDATA[" + req_info.encode() + b"]]></req_info>", body)


def _plaintext(body: bytes) -> bytes:
    return decrypt_req_info(base64.b64encode(_req_info(body)).decode(), refund_key(key().encode()))


def _splice(first: bytes, second: bytes, marker: bytes, *, value_length: int, skip: int = 0) -> bytes:
    """`first` with the ciphertext blocks under `marker`'s value (from `skip` characters into it)
    taken from `second`: what anyone holding two captured refund notifications of one merchant
    can do, without any key."""
    one, two = _req_info(first), _req_info(second)
    assert len(one) == len(two)
    start = _plaintext(first).index(marker) + len(marker)
    assert start == _plaintext(second).index(marker) + len(marker)  # the same layout: aligned blocks
    start += skip
    taken = range(start // BLOCK, (start + value_length - 1) // BLOCK + 1)
    blocks = [(two if i in taken else one)[i * BLOCK : (i + 1) * BLOCK] for i in range(len(one) // BLOCK)]
    return _with_req_info(first, base64.b64encode(b"".join(blocks)).decode())


def test_splicing_a_larger_refund_amount_into_a_genuine_refund_is_refused() -> None:
    # Two genuine refunds, the same layout: order-1 refunds 10.00 of 88.88, order-2 90.00 of 99.99.
    small = refund(out_trade_no="order-1", out_refund_no="refund-A-01", total_fee=8888, refund_fee=1000)
    large = refund(out_trade_no="order-2", out_refund_no="refund-B-02", total_fee=9999, refund_fee=9000)
    forged = _splice(small, large, b"<refund_fee><![CDATA[", value_length=4)
    # The splice is real: it decrypts, with strict padding, to a well-formed document mixing both.
    mixed = parse_flat_xml(_plaintext(forged), "root")
    assert (mixed["out_trade_no"], mixed["total_fee"], mixed["refund_fee"]) == ("order-1", "8888", "9000")
    with pytest.raises(InvalidContent, match="refund_fee 9000 is more than total_fee 8888"):
        parse(forged)


def test_splicing_a_settlement_amount_over_the_refund_is_refused() -> None:
    small = refund(out_refund_no="refund-A-01", total_fee=8888, refund_fee=1000)
    large = refund(out_refund_no="refund-B-02", total_fee=8888, refund_fee=8000)
    forged = _splice(small, large, b"<settlement_refund_fee><![CDATA[", value_length=4)
    assert parse_flat_xml(_plaintext(forged), "root")["settlement_refund_fee"] == "8000"
    with pytest.raises(InvalidContent, match="settlement_refund_fee 8000 is more than refund_fee 1000"):
        parse(forged)


def test_splicing_out_of_alignment_is_refused() -> None:
    # Numbers of different lengths shift every later block: each prefix of one refund followed by
    # the rest of another is refused (not XML, a field twice or missing, or out of shape).
    short = refund(out_refund_no="r-1", total_fee=8888, refund_fee=1000)
    long = refund(out_refund_no="refund-000000000000000000002", total_fee=8888, refund_fee=1000)
    one, two = _req_info(short), _req_info(long)
    refused = 0
    for cut in range(1, len(one) // BLOCK):
        spliced = one[: cut * BLOCK] + two[cut * BLOCK :]
        body = _with_req_info(short, base64.b64encode(spliced).decode())
        try:
            result = parse(body)
        except (MalformedNotification, VerificationError):
            refused += 1
        else:
            # A cut inside a value both share can line up again; then it can only be a copy of an
            # existing refund: the same refund request, hence the same event.
            assert result.event_id in {parse(short).event_id, parse(long).event_id}
    assert refused >= len(one) // BLOCK // 2


def test_a_splice_that_keeps_every_rule_is_not_detectable_here() -> None:
    """The limit, pinned: with aligned layouts, a splice inside out_refund_no makes a refund request
    number nobody sent, with consistent amounts. No local check can tell (ECB has no MAC), which is
    why docs/providers/wechatpay-v2.md has a check hook confirm each refund with WeChat Pay."""
    one = refund(out_refund_no="refund-aaaaaaaaaaaaaaaa-1111")
    two = refund(out_refund_no="refund-bbbbbbbbbbbbbbbb-2222")
    # The value starts 31 bytes in: its 17th character begins the fourth block.
    forged = _splice(one, two, b"<out_refund_no><![CDATA[", value_length=1, skip=17)
    result = parse(forged)
    assert result.refund_id == "refund-aaaaaaaaaabbbbbb-2222"
    assert result.is_paid is False
    assert result.status == "succeeded"
    assert result.event_id not in {parse(one).event_id, parse(two).event_id}
