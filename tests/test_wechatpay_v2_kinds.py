"""WeChat Pay v2 notifications that name no order (a 委托代扣 contract signed or ended, or a kind
paynotify does not know): verified with the account's key, then an UnhandledEvent typed by what it
is, the same event for every resend; unsigned or forged, refused as before. Signed here with
throwaway keys."""

from __future__ import annotations

import secrets

import pytest
from _wechatpay_v2 import MCH_ID, PROVIDER, account, key
from paynotify_wechatpay._xml import to_xml
from paynotify_wechatpay.testing import sign_v2

from paynotify import InboundRequest, MalformedNotification, UnhandledEvent, VerificationError


def contract(change_type: str = "ADD", *, signed: bool = True, **changes: str) -> bytes:
    fields = {"mch_id": MCH_ID, "contract_code": "C-1", "plan_id": "12535", "openid": "o-user",
              "change_type": change_type, "operate_time": "2026-12-01 12:00:00",
              "contract_id": "201509160000028648", "request_serial": "1695",
              "nonce_str": secrets.token_hex(16)}  # fmt: skip
    fields.update(changes)
    if signed:
        fields["sign"] = sign_v2(fields, key())
    return to_xml(fields).encode()


def parse_event(body: bytes) -> UnhandledEvent:
    parsed = PROVIDER.parse(InboundRequest("POST", "notify", body=body), account())
    assert isinstance(parsed, UnhandledEvent)
    return parsed


@pytest.mark.parametrize(
    ("change", "event_type"), [("ADD", "PAPAY.CONTRACT.ADD"), ("DELETE", "PAPAY.CONTRACT.DELETE")]
)
def test_a_contract_notification_is_an_unhandled_event_of_its_type(change: str, event_type: str) -> None:
    event = parse_event(contract(change))
    assert (event.provider, event.event_type) == ("wechatpay-v2", event_type)
    assert event.raw["contract_id"] == "201509160000028648"


def test_a_resend_with_a_new_nonce_is_the_same_event_another_change_is_not() -> None:
    assert parse_event(contract()).event_id == parse_event(contract()).event_id
    assert parse_event(contract()).event_id != parse_event(contract("DELETE")).event_id


def test_a_kind_paynotify_does_not_know_is_unrecognized() -> None:
    fields = {"mch_id": MCH_ID, "appid": "wx0000000000000001", "return_code": "SUCCESS", "something": "new"}
    fields["sign"] = sign_v2(fields, key())
    assert parse_event(to_xml(fields).encode()).event_type == "UNRECOGNIZED"


def test_unsigned_or_forged_it_is_refused() -> None:
    with pytest.raises(MalformedNotification):
        PROVIDER.parse(InboundRequest("POST", "notify", body=contract(signed=False)), account())
    forged = contract().replace(b"o-user", b"o-usex")
    with pytest.raises(VerificationError):
        PROVIDER.parse(InboundRequest("POST", "notify", body=forged), account())
