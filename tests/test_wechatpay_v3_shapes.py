"""Signed is not enough: WeChat Pay v3 JSON must be sane JSON (no duplicate keys, no lone surrogate,
bounded nesting) and its resource fields must have their documented shapes. Every notification
here is genuinely signed and encrypted with the throwaway keys of _wechatpay_v3."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from _wechatpay_v3 import (
    APPID,
    MCHID,
    NOW,
    PROVIDER,
    apiv3_key,
    certificate,
    parse,
    parse_result,
    payment,
    refund,
    settings,
)
from hypothesis import given
from hypothesis import strategies as st
from paynotify_wechatpay._json import _DECODER, MAX_DEPTH, _decode, _Duplicate, _many_brackets
from paynotify_wechatpay.testing import (
    encrypt_v3_resource,
    make_v3_notify,
    sign_v3,
    v3_refund_resource,
    v3_transaction_resource,
)

from paynotify import InvalidContent, MalformedNotification, Notifier, PaymentResult

Notify = tuple[dict[str, str], bytes]


def _resource_json() -> str:
    resource = encrypt_v3_resource(
        v3_transaction_resource(appid=APPID, mchid=MCHID, out_trade_no="order-1"), apiv3_key()
    )
    return json.dumps(resource, separators=(",", ":"))


def envelope(middle: str = "", summary: str = '"ok"') -> Notify:
    """A signed envelope written by hand, so that its JSON can be anything: `middle` goes in as
    more members, `summary` is the summary's JSON text."""
    body = (
        '{"id":"EV-1","create_time":"2023-11-15T06:13:20+08:00","resource_type":"encrypt-resource",'
        f'"event_type":"TRANSACTION.SUCCESS","summary":{summary}{middle},"resource":{_resource_json()}}}'
    ).encode()
    return sign_v3(body, certificate(), timestamp=NOW), body


def with_resource(plaintext: str, event_type: str = "TRANSACTION.SUCCESS") -> Notify:
    """A signed notification whose decrypted resource is exactly `plaintext`."""
    return make_v3_notify(
        certificate(), apiv3_key(), plaintext.encode(), event_type=event_type, timestamp=NOW
    )


def nested(depth: int) -> str:
    """A JSON value `depth` arrays deep."""
    return "[" * depth + "]" * depth


# -- JSON that WeChat Pay never sends ---------------------------------------------------------------

ENVELOPES_REFUSED = [
    (envelope(summary='"\\ud800"'), "lone surrogate"),
    (envelope(summary='"a\\udc00b"'), "lone surrogate"),
    (envelope(summary='"\\ude00\\ud83d"'), "lone surrogate"),  # a pair in the wrong order
    (envelope(summary='{"\\ud800":1}'), "lone surrogate"),  # in a key
    (envelope(middle=',"event_type":"PAYSCORE.USER_OPEN_SERVICE"'), "key 'event_type' more than once"),
    (envelope(summary='{"a":1,"a":2}'), "key 'a' more than once"),
    (envelope(middle=f',"x":{nested(MAX_DEPTH)}'), f"deeper than {MAX_DEPTH}"),
    (envelope(middle=f',"x":{nested(20_000)}'), f"deeper than {MAX_DEPTH}"),  # a RecursionError before
    (envelope(middle=',"x":' + '{"a":' * 5000 + "1" + "}" * 5000), f"deeper than {MAX_DEPTH}"),
]


@pytest.mark.parametrize(("notify", "match"), ENVELOPES_REFUSED, ids=[m for _, m in ENVELOPES_REFUSED])
def test_a_signed_envelope_that_is_not_sane_json_is_malformed(notify: Notify, match: str) -> None:
    with pytest.raises(MalformedNotification, match=match) as info:
        parse(notify)
    assert PROVIDER.nack(info.value).status == 400


def test_sane_escapes_and_depth_are_accepted() -> None:
    for summary in (
        '"\\ud83d\\ude00"',
        '"\\\\ud800"',
        '"\\u652f\\u4ed8"',
        f'{{"x":{nested(MAX_DEPTH - 2)}}}',
    ):
        result = parse(envelope(summary=summary))
        assert isinstance(result, PaymentResult), summary
    assert parse(envelope(summary='"\\ud83d\\ude00"')).raw["summary"] == "\U0001f600"
    assert parse(envelope(summary='"\\\\ud800"')).raw["summary"] == "\\ud800"


def _decoded(decode: Any, text: str) -> tuple[str, ...]:
    try:
        return ("value", repr(decode(text)))
    except _Duplicate as exc:
        return ("duplicate", exc.key)
    except ValueError:
        return ("not JSON",)


_JSONISH = st.lists(
    st.sampled_from(['{', '}', '[', ']', '"a"', ':', ',', '1', '-', '.', 'e', ' ', '\t', '\n', '\r',
                     '\x0c', '\u3000', 'null', 'x', '"\\u00e9"', '{"a":1}', '[1,2]', '\ufeff']),
    max_size=10,
).map("".join)  # fmt: skip


@given(_JSONISH)
def test_the_strict_decoder_reads_as_json_decode_does(text: str) -> None:
    """_decode skips JSONDecoder.decode's whitespace regexes: the same value, or ValueError, for any text."""
    assert _decoded(_decode, text) == _decoded(_DECODER.decode, text)


@given(st.text(alphabet='{[]}a"好', max_size=3 * MAX_DEPTH))
def test_brackets_are_found_as_counting_them_would(text: str) -> None:
    assert _many_brackets(text) is (text.count("{") + text.count("[") > MAX_DEPTH)


def test_many_brackets_in_strings_are_not_nesting() -> None:
    summary = json.dumps("[" * 100 + "{" * 100)
    assert parse(envelope(summary=summary)).raw["summary"] == "[" * 100 + "{" * 100


_RESOURCE = json.dumps(v3_transaction_resource(appid=APPID, mchid=MCHID, out_trade_no="order-1"))
RESOURCES_REFUSED = [
    (_RESOURCE.replace('"attach": ""', '"attach": "\\udbff"'), "lone surrogate"),
    (
        _RESOURCE.replace('"trade_type"', '"trade_state": "NOTPAY", "trade_type"'),
        "key 'trade_state' more than once",
    ),
    (_RESOURCE.replace('"attach": ""', f'"attach": {nested(MAX_DEPTH)}'), "deeper than"),
    (_RESOURCE.replace('"attach": ""', f'"attach": {nested(20_000)}'), "deeper than"),
    (_RESOURCE.replace('"attach": ""', '"attach": NaN'), "not JSON"),
]


@pytest.mark.parametrize(("plaintext", "match"), RESOURCES_REFUSED, ids=[m for _, m in RESOURCES_REFUSED])
def test_a_decrypted_resource_that_is_not_sane_json_is_malformed(plaintext: str, match: str) -> None:
    assert plaintext != _RESOURCE
    with pytest.raises(MalformedNotification, match=f"decrypted resource .*{match}") as info:
        parse(with_resource(plaintext))
    assert PROVIDER.nack(info.value).status == 400


@pytest.fixture
def notifier() -> Notifier:
    n = Notifier("memory://")
    n.add_account("shop", PROVIDER, **settings())
    return n


async def test_through_the_route_deep_or_surrogate_json_is_400_never_500(
    client: httpx.AsyncClient, delivered: list[PaymentResult]
) -> None:
    for headers, body in (
        envelope(middle=f',"x":{nested(20_000)}'),
        envelope(summary='"\\ud800"'),
        with_resource(RESOURCES_REFUSED[3][0]),
    ):
        response = await client.post("/shop/notify", content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "FAIL"
    assert delivered == []


# -- fields out of their documented shapes ---------------------------------------------------------

PAYMENT_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"trade_state": "SOMETHING_NEW"}, "trade_state is 'SOMETHING_NEW', not one of SUCCESS, REFUND"),
    ({"trade_state": "success"}, "trade_state"),
    ({"transaction_id": "4200000000&x"}, "transaction_id is .*, not 1-32 digits"),
    ({"transaction_id": 4200000000}, "transaction_id is 4200000000, not a string"),
    ({"transaction_id": "1" * 33}, "transaction_id"),
    ({"out_trade_no": "order 1"}, "out_trade_no is 'order 1', not 1-32 letters, digits or _-|\\*"),
    ({"out_trade_no": "o" * 33}, "out_trade_no"),
    ({"amount": {"total": -1, "currency": "CNY"}}, "amount.total is -1, not whole fen"),
    ({"amount": {"total": 88.88}}, "amount.total"),
    ({"amount": {"total": "8888"}}, "amount.total"),
    ({"amount": {"total": True}}, "amount.total"),
    ({"amount": {"total": 8888, "payer_total": -1}}, "amount.payer_total is -1"),
    ({"amount": {"total": 8888, "payer_total": 1.5}}, "amount.payer_total"),
    ({"success_time": "2024-01-01 12:00:00"}, "success_time .* not RFC 3339"),
    ({"success_time": "2024-01-01T12:00:00"}, "success_time"),
    ({"transaction_id": None}, "has no transaction_id"),
]


@pytest.mark.parametrize(("extra", "match"), PAYMENT_REFUSED, ids=[m for _, m in PAYMENT_REFUSED])
def test_a_payment_resource_out_of_shape_is_refused_as_invalid_content(
    extra: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidContent, match=match) as info:
        parse(payment(**extra))
    assert info.value.raw["mchid"] == MCHID  # the decrypted resource and the envelope, for the record
    assert info.value.raw["event_type"].startswith("TRANSACTION.")


REFUND_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"refund_status": "SOMETHING_NEW"}, "refund_status is 'SOMETHING_NEW', not one of SUCCESS, ABNORMAL"),
    ({"out_refund_no": "refund#1"}, "out_refund_no is 'refund#1', not 1-64 letters, digits or _-|\\*@"),
    ({"out_refund_no": "r" * 65}, "out_refund_no"),
    ({"refund_id": "5030-1"}, "refund_id is '5030-1', not 1-32 digits"),
    ({"transaction_id": "42x"}, "transaction_id"),
    ({"amount": {"total": 8888, "refund": 8889}}, "amount.refund 88.89 is more than amount.total 88.88"),
    ({"amount": {"total": 8888, "refund": -1}}, "amount.refund is -1"),
    ({"amount": {"total": 8888, "refund": 100, "payer_refund": -5}}, "amount.payer_refund is -5"),
    ({"amount": {"total": 8888, "refund": 100, "payer_total": "8888"}}, "amount.payer_total"),
]


@pytest.mark.parametrize(("extra", "match"), REFUND_REFUSED, ids=[m for _, m in REFUND_REFUSED])
def test_a_refund_resource_out_of_shape_is_refused_as_invalid_content(
    extra: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidContent, match=match):
        parse(refund(**extra))


def test_invalid_content_carries_the_event_id_a_well_formed_copy_would_have() -> None:
    with pytest.raises(InvalidContent) as info:
        parse(payment(amount={"total": 8888, "payer_total": -1}))
    assert info.value.event_id == parse_result(payment()).event_id
    with pytest.raises(InvalidContent) as info:
        parse(refund(amount={"total": 8888, "refund": 1000, "payer_refund": -1}))
    assert info.value.event_id == parse_result(refund()).event_id
    not_a_string: Any = ["not", "a", "string"]
    with pytest.raises(InvalidContent) as info:
        parse(payment(out_trade_no=not_a_string, transaction_id=None, trade_state="NOTPAY"))
    assert info.value.event_id is None


def test_documented_shapes_are_accepted() -> None:
    paid = parse_result(payment(out_trade_no="A-b_c|d*9" + "x" * 23, transaction_id="9" * 32))
    assert paid.order_id == "A-b_c|d*9" + "x" * 23
    assert parse_result(payment(amount={"total": 0, "payer_total": 0})).amount == 0
    assert parse_result(payment(success_time="2024-01-01T12:00:00.123+08:00")).paid_at is not None
    assert parse_result(payment(success_time="2024-01-01T04:00:00Z")).paid_at is not None
    full = parse_result(refund(out_refund_no="R-1_a|b*c@d" + "9" * 53, total=8888, refund_fee=8888))
    assert full.refund_amount == full.amount
    resource = v3_refund_resource(mchid=MCHID, out_trade_no="order-1", out_refund_no="r-1", total=1, refund=1)
    assert parse_result(with_resource(json.dumps(resource), "REFUND.SUCCESS")).refund_id == "r-1"
