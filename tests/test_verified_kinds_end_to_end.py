"""One rule for every provider (issue 20): a notification whose signature verifies is never answered
with a failure because of what it is. Alipay, WeChat Pay v2 and WeChat Pay v3 are driven through the
ASGI app with genuinely signed bodies (throwaway keys) of a kind paynotify does not map, and of a
known kind out of shape: each gets the provider's success reply and is on record, `unhandled`
(offered to on_unhandled hooks) or `rejected` with its reason; nothing is delivered.
(UnionPay's counterpart is in the UnionPay tests.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _alipay_keys import APP_ID as ALIPAY_APP_ID
from _alipay_keys import key as alipay_key
from _alipay_keys import pem as alipay_pem
from _wechatpay_v2 import APPID as V2_APPID
from _wechatpay_v2 import MCH_ID as V2_MCH_ID
from _wechatpay_v2 import key as v2_key
from _wechatpay_v3 import MCHID, NOW, PROVIDER, apiv3_key, certificate, lower, payment, settings
from paynotify_alipay import AlipayProvider
from paynotify_alipay._signature import sign, sign_content
from paynotify_alipay.testing import encode_form, make_notify
from paynotify_wechatpay import WeChatPayV2Provider
from paynotify_wechatpay._xml import parse_flat_xml, to_xml
from paynotify_wechatpay.testing import make_v2_payment_notify, make_v3_notify, sign_v2

from paynotify import EventState, Notifier, PaymentResult, UnhandledEvent

Request = tuple[dict[str, str], bytes]


def alipay_unknown() -> Request:
    fields = {"notify_id": "2026120100222150023000051427585799", "notify_time": "2026-12-01 12:00:00",
              "notify_type": "some_future_notify", "app_id": ALIPAY_APP_ID, "charset": "utf-8",
              "version": "1.0", "sign_type": "RSA2", "biz_content": '{"anything":"new"}'}  # fmt: skip
    raw = {k.encode(): v.encode() for k, v in fields.items()}
    fields["sign"] = sign(sign_content(raw, "V2"), alipay_key(), "RSA2")
    return {}, encode_form(fields)


def alipay_out_of_shape() -> Request:
    return {}, make_notify(alipay_key(), app_id=ALIPAY_APP_ID, out_trade_no="o-1", trade_status="TRADE_MAYBE")


def v2_unknown() -> Request:
    # A 委托代扣 contract notification: signed, names no order.
    fields = {"mch_id": V2_MCH_ID, "contract_code": "C-1", "plan_id": "12535", "openid": "o-user",
              "change_type": "ADD", "operate_time": "2026-12-01 12:00:00",
              "contract_id": "201509160000028648", "request_serial": "1695",
              "result_code": "SUCCESS", "return_code": "SUCCESS"}  # fmt: skip
    fields["sign"] = sign_v2(fields, v2_key())
    return {"content-type": "text/xml"}, to_xml(fields).encode()


def v2_out_of_shape() -> Request:
    body = make_v2_payment_notify(
        v2_key(), appid=V2_APPID, mch_id=V2_MCH_ID, out_trade_no="o-1", result_code="MAYBE"
    )
    return {"content-type": "text/xml"}, body


def v3_unknown() -> Request:
    headers, body = make_v3_notify(
        certificate(), apiv3_key(), {"mchid": MCHID, "something": "new"}, event_type="NEWPRODUCT.HAPPENED",
        original_type="newproduct", timestamp=NOW,
    )  # fmt: skip
    return lower(headers), body


def v3_out_of_shape() -> Request:
    headers, body = payment(trade_state="MAYBE")
    return lower(headers), body


def notifier() -> Notifier:
    n = Notifier("memory://")
    n.add_account("ali", AlipayProvider(), app_id=ALIPAY_APP_ID, alipay_public_key=alipay_pem())
    n.add_account("wx2", WeChatPayV2Provider(), appid=V2_APPID, mch_id=V2_MCH_ID, api_key=v2_key())
    n.add_account("wx3", PROVIDER, **settings())
    return n


def alipay_success(reply: httpx.Response) -> bool:
    return reply.status_code == 200 and reply.content == b"success"


def v2_success(reply: httpx.Response) -> bool:
    return reply.status_code == 200 and parse_flat_xml(reply.content) == {
        "return_code": "SUCCESS",
        "return_msg": "OK",
    }


def v3_success(reply: httpx.Response) -> bool:
    return reply.status_code == 204 and reply.content == b""


CASES: list[tuple[str, Callable[[], Request], Callable[[httpx.Response], bool], EventState, str]] = [
    ("ali", alipay_unknown, alipay_success, EventState.UNHANDLED, "some_future_notify"),
    ("ali", alipay_out_of_shape, alipay_success, EventState.REJECTED, "trade_status 'TRADE_MAYBE'"),
    ("wx2", v2_unknown, v2_success, EventState.UNHANDLED, "PAPAY.CONTRACT.ADD"),
    ("wx2", v2_out_of_shape, v2_success, EventState.REJECTED, "result_code is 'MAYBE'"),
    ("wx3", v3_unknown, v3_success, EventState.UNHANDLED, "NEWPRODUCT.HAPPENED"),
    ("wx3", v3_out_of_shape, v3_success, EventState.REJECTED, "trade_state is 'MAYBE'"),
]


@pytest.mark.parametrize(
    ("account", "make", "is_success", "state", "what"),
    CASES,
    ids=[f"{c[0]}-{c[3].value}" for c in CASES],
)
async def test_a_verified_body_of_any_kind_is_acknowledged_and_on_record(
    account: str,
    make: Callable[[], Request],
    is_success: Callable[[httpx.Response], bool],
    state: EventState,
    what: str,
) -> None:
    n = notifier()
    delivered: list[PaymentResult] = []
    offered: list[UnhandledEvent] = []
    n.subscribe(delivered.append, name="all")
    n.on_unhandled(offered.append)
    headers, body = make()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=n.asgi()), base_url="http://t") as client:
        reply = await client.post(f"/{account}/notify", content=body, headers=headers)
    assert is_success(reply), (reply.status_code, reply.content)
    (event,) = await n.store.find()
    assert (event.account, event.state) == (account, state)
    assert delivered == []
    if state is EventState.UNHANDLED:
        assert event.status == what
        assert [e.event_type for e in offered] == [what]
    else:
        assert event.last_error is not None
        assert what in event.last_error
        assert offered == []


@pytest.mark.parametrize("account", ["ali", "wx2", "wx3"])
async def test_a_changed_byte_still_gets_the_failure_reply_and_no_record(account: str) -> None:
    """The other half of the rule: what does not verify is refused and never recorded."""
    n = notifier()
    make: dict[str, Callable[[], Request]] = {"ali": alipay_unknown, "wx2": v2_unknown, "wx3": v3_unknown}
    headers, body = make[account]()
    forged = body.replace(b"o-user", b"o-usex").replace(b"future", b"futurf").replace(b'"id":"', b'"id":"x')
    assert forged != body
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=n.asgi()), base_url="http://t") as client:
        reply = await client.post(f"/{account}/notify", content=forged, headers=headers)
    success: dict[str, Any] = {"ali": alipay_success, "wx2": v2_success, "wx3": v3_success}
    assert not success[account](reply)
    assert await n.store.find() == []
