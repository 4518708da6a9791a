"""Verified is not enough: Alipay's signed content does not delimit its values, so the fields must
also have their documented shapes. Every notification here is genuinely signed."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from _alipay_keys import APP_ID, account, key, parse
from paynotify_alipay._form import decode_form
from paynotify_alipay._shapes import AMOUNT_FIELDS
from paynotify_alipay._signature import sign_content, verify
from paynotify_alipay.testing import encode_form, make_notify, make_return

from paynotify import InvalidContent, Kind, MalformedNotification, make_event_id

PARTIAL = {"refund_fee": "20.00", "gmt_refund": "2024-05-20 12:31:05.123", "out_biz_no": "R-1"}


def notify(trade_status: str | None = "TRADE_SUCCESS", **fields: str | None) -> bytes:
    ids = {"app_id": APP_ID, "out_trade_no": "order-1", **fields}
    data = make_notify(key(), trade_status=trade_status, **ids)  # type: ignore[arg-type]
    if ids["app_id"] is None:  # make_notify needs one to derive trade_no; Alipay always sends it
        data = make_notify(key(), trade_status=trade_status, **{**ids, "app_id": APP_ID, "auth_app_id": None})  # type: ignore[arg-type]
        data = _without(data, "app_id")
    return data


def _without(data: bytes, name: str) -> bytes:
    fields = dict(parse_qsl(data.decode("ascii"), keep_blank_values=True))
    del fields[name]
    from paynotify_alipay.testing import sign_fields

    del fields["sign"]
    return encode_form(dict(fields, sign=sign_fields(fields, key())))


def repartition(data: bytes, into: str, swallow: int) -> bytes:
    """The same signed content split another way: `into` takes the next `swallow` signed fields
    (in the content's sorted order) into its value, `&` and all, as an attacker can."""
    fields = dict(parse_qsl(data.decode("ascii"), keep_blank_values=True))
    signed = sorted(k for k, v in fields.items() if v and k not in ("sign", "sign_type"))
    start = signed.index(into)
    taken = signed[start + 1 : start + 1 + swallow]
    assert len(taken) == swallow
    fields[into] += "".join(f"&{name}={fields.pop(name)}" for name in taken)
    forged = encode_form(fields)
    # The forgery is real: the signature Alipay made still verifies over it.
    form = decode_form(forged)
    verify(sign_content(form.raw), form.fields["sign"], account().settings.public_keys, "RSA2")
    return forged


# -- the probe's findings -----------------------------------------------------------------------


def test_trade_no_swallowing_trade_status_is_refused() -> None:
    # Without trade_status it was a new pending event whose transaction_id read "...&trade_status=...".
    forged = repartition(notify(), "trade_no", 1)
    with pytest.raises(InvalidContent, match=r"trade_no '.*' is not 1-64 digits"):
        parse(forged)


def test_a_paid_status_whose_total_amount_was_swallowed_is_refused() -> None:
    # subject (free text, sorted just before total_amount) takes it: a paid result with amount=None.
    forged = repartition(notify(), "subject", 1)
    with pytest.raises(InvalidContent, match="trade_status TRADE_SUCCESS without total_amount") as info:
        parse(forged)
    assert "total_amount" not in info.value.raw
    assert info.value.raw["subject"].endswith("&total_amount=88.88")


def test_a_free_text_field_swallowing_the_trade_number_is_refused() -> None:
    forged = repartition(notify(), "subject", 3)  # total_amount, trade_no, trade_status
    with pytest.raises(InvalidContent, match="trade_no is missing"):
        parse(forged)


def test_an_amount_swallowing_the_next_fields_is_refused() -> None:
    forged = repartition(notify(), "point_amount", 1)
    with pytest.raises(InvalidContent, match=r"point_amount '0\.00&receipt_amount=.*' is not yuan"):
        parse(forged)


def test_a_refund_request_number_swallowing_fields_is_refused() -> None:
    # out_trade_no is the field signed after it: required, so its absence is what gives it away.
    forged = repartition(notify(**PARTIAL), "out_biz_no", 1)
    with pytest.raises(InvalidContent, match="out_trade_no is missing"):
        parse(forged)


# -- one rule at a time, on genuinely signed notifications -------------------------------------

REFUSED: list[tuple[dict[str, str | None], str]] = [
    ({"trade_no": "2024052022001A"}, "trade_no"),
    ({"trade_no": "1" * 65}, "trade_no"),
    ({"trade_no": "\uff11\uff12\uff13"}, "trade_no"),  # full-width digits are digits to `\d`, not to Alipay
    ({"out_trade_no": "order 1"}, "out_trade_no"),
    ({"out_trade_no": "order&1"}, "out_trade_no"),
    ({"out_trade_no": "订单1"}, "out_trade_no"),
    ({"out_trade_no": "a" * 65}, "out_trade_no"),
    ({**PARTIAL, "out_biz_no": "R&1"}, "out_biz_no"),
    ({**PARTIAL, "out_biz_no": "R=1"}, "out_biz_no"),
    ({**PARTIAL, "out_biz_no": "R 1"}, "out_biz_no"),
    ({**PARTIAL, "out_biz_no": "R" * 65}, "out_biz_no"),
    ({"app_id": "2021-0001", "auth_app_id": APP_ID}, "but app_id '2021-0001' is not 1-32 digits"),
    ({"auth_app_id": "2021x"}, "auth_app_id"),
    ({"seller_id": "2088 0001"}, "seller_id"),
    ({"notify_id": "ac05-0995"}, "notify_id"),
    *[
        (dict[str, str | None]({name: bad}), name)
        for name in AMOUNT_FIELDS
        for bad in ("1.001", "+1.00", "1e2", "-1", "1.")
    ],
    ({"total_amount": " 88.88"}, "total_amount"),
    ({"total_amount": "\uff18\uff18.88"}, "total_amount"),
    ({"total_amount": "Infinity"}, "total_amount"),
    ({"total_amount": "0x10"}, "total_amount"),
    ({"notify_time": "2024-05-20T10:00:00"}, "notify_time"),
    ({"gmt_create": "2024-05-20 10:00"}, "gmt_create"),
    ({"gmt_payment": "2024-05-20 10:00:00.123"}, "gmt_payment"),
    ({"gmt_close": "20240520100000"}, "gmt_close"),
    ({"refund_fee": "1.00", "gmt_refund": "2024-05-20 10:00:00.1234"}, "gmt_refund"),
    ({"trade_status": "TRADE_PENDING"}, "trade_status"),
    ({"trade_status": "trade_success"}, "trade_status"),
    ({"total_amount": None}, "without total_amount"),
    ({"trade_status": "TRADE_FINISHED", "total_amount": None}, "without total_amount"),
    ({"notify_id": None}, "not an async notification"),
    ({"app_id": None, "auth_app_id": None}, "app_id is missing"),
    ({"trade_no": None}, "trade_no is missing"),
]


@pytest.mark.parametrize(
    ("fields", "rule"), REFUSED, ids=[f"{rule}:{list(f.values())[-1]!r}" for f, rule in REFUSED]
)
def test_a_field_out_of_its_shape_is_refused_naming_field_and_rule(
    fields: dict[str, str | None], rule: str
) -> None:
    status = fields.pop("trade_status", "TRADE_SUCCESS")
    with pytest.raises(InvalidContent, match=rule) as info:
        parse(notify(status, **fields))
    error = info.value
    assert error.account == "shop"
    assert error.message.startswith("verified, but ")
    assert isinstance(error, MalformedNotification)  # the failure reply: Alipay resends, nothing dispatched
    assert error.raw["sign"]
    assert error.raw["out_trade_no"] == fields.get("out_trade_no", "order-1")


def test_invalid_content_carries_the_event_id_a_well_formed_copy_would_have() -> None:
    data = notify(total_amount=None)
    with pytest.raises(InvalidContent) as info:
        parse(data)
    trade_no = info.value.raw["trade_no"]
    assert info.value.event_id == make_event_id("shop", Kind.PAYMENT, trade_no, None, "TRADE_SUCCESS")
    assert info.value.event_id == parse(notify()).event_id


def test_the_message_does_not_echo_a_long_value() -> None:
    with pytest.raises(InvalidContent) as info:
        parse(notify(total_amount="1" * 5000))
    assert "1" * 30 not in str(info.value)
    assert len(str(info.value)) < 200


ACCEPTED = [
    {"out_trade_no": "A_b-9" + "x" * 59},
    {"trade_no": "9" * 64},
    {"total_amount": "0"},
    {"total_amount": "88.8"},
    {"total_amount": "100000000.00"},
    {**PARTIAL, "out_biz_no": "RF/2024:05.20#1"},  # no alphabet is documented for it: only & and = go
    {**PARTIAL, "gmt_refund": "2024-05-20 12:31:05"},
    {"charset": "UTF-8"},
    {"charset": "GBK"},
    {"charset": "Utf8"},
    {"buyer_id": None, "buyer_open_id": "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"},
    {"passback_params": "a%3D1%26b%3D2"},
]


@pytest.mark.parametrize("fields", ACCEPTED, ids=[repr(f) for f in ACCEPTED])
def test_documented_shapes_are_accepted(fields: dict[str, str | None]) -> None:
    result = parse(notify(**fields))
    assert result.raw["sign"]


@pytest.mark.parametrize("status", ["WAIT_BUYER_PAY", "TRADE_CLOSED", None])
def test_an_unpaid_state_needs_no_total_amount(status: str | None) -> None:
    assert parse(notify(status, total_amount=None)).amount is None


def test_a_return_is_held_to_the_same_shapes() -> None:
    good = make_return(key(), app_id=APP_ID, out_trade_no="order-1")
    assert parse(good, channel="return", method="GET").order_id == "order-1"
    bad = make_return(key(), app_id=APP_ID, out_trade_no="order-1", total_amount="1e2")
    with pytest.raises(InvalidContent, match="total_amount"):
        parse(bad, channel="return", method="GET")
