"""A local WeChat Pay API v2, as an ASGI app: orders, refunds, signed answers, pushed notifications.

    emulator = testing.WeChatPayV2Emulator(sign_type="HMAC-SHA256")
    notifier.add_account("shop", "wechatpay-v2", **emulator.account_settings())
    emulator.pay("order-1", total_fee=8888)               # the buyer paid
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator))
    # queries of account "shop" now reach the emulator: base_url is emulator.base_url

It answers what paynotify asks, as WeChat Pay does (PROTOCOLS.md, "Asking the provider"):
`POST /pay/orderquery` (by out_trade_no) and `POST /pay/refundquery` (by out_refund_no), XML.
Each request's sign is checked with the account's API key and the sign_type it names (MD5 when
it names none); a bad one gets return_code FAIL 签名错误, unsigned, as WeChat Pay answers. Every
other answer is signed with the key, the request's sign_type: unknown orders result_code FAIL
ORDERNOTEXIST, unknown refunds REFUNDNOTEXIST, another appid / mch_id APPID_MCHID_NOT_MATCH. A
refund answer lists every refund of the order (`out_refund_no_$n`, ...); a refund moves its order
to trade_state REFUND, as WeChat Pay's does.

`notification(...)` is the notification WeChat Pay sends for an order's (or a refund's) current
state, with the same fields as the query answer: a signed payment XML, or a refund with req_info
encrypted under md5(API key). `push(...)` POSTs it to a notify_url: dropped, duplicated, or after
an awaitable (a delay the test controls).

`POST /pay/downloadbill` (bill_date YYYYMMDD, bill_type ALL) answers the day's trade bill written
from the ledger in WeChat Pay's format (`_emulator_bills`), with the discrepancies of
`bill_faults`, gzip when tar_type=GZIP; a day not over yet (Beijing time, by `clock`) or in
`no_bill` gets the unsigned error XML return_code FAIL, return_msg "No Bill Exist".

Faults, for tests: `down` (HTTP 503), `error` (an err_code answered, signed, to every query, e.g.
SYSTEMERROR or NOAUTH), `stall` (an asyncio.Event awaited before answering: a provider that is
slow until the test says so), `unsigned` (answers without sign), `answer_key` (answers signed with
another API key: a forger's), `tamper` (bytes -> bytes applied after signing: a forged or
re-serialised answer). `requests` lists (path, the order or refund asked about).
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from paynotify import BEIJING, DemoRequest, LocalEmulator, MalformedNotification, VerificationError
from paynotify.testing import Clock, NotificationCourier, push_once
from paynotify_wechatpay import testing
from paynotify_wechatpay._emulator_bills import BillFaults, Paid, Refunded, trade_bill
from paynotify_wechatpay._emulator_resends import V2_RESEND_SCHEDULE as RESEND_SCHEDULE
from paynotify_wechatpay._v2_api import ORDER_QUERY_PATH, REFUND_QUERY_PATH
from paynotify_wechatpay._v2_bills import DOWNLOAD_BILL_PATH, NO_BILL
from paynotify_wechatpay._v2_settings import WeChatPayV2Settings
from paynotify_wechatpay._v2_signature import SIGN_TYPES, SignType, sign, verify
from paynotify_wechatpay._xml import parse_flat_xml, to_xml

__all__ = ["EMULATOR_BASE_URL", "RESEND_SCHEDULE", "WeChatPayV2Emulator", "local_v2_emulator"]

EMULATOR_BASE_URL = "http://wechatpay-v2.emulator"
"""The base_url accounts are given; any host works, the ASGI transport ignores it."""

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
SendAsgi = Callable[[Mapping[str, Any]], Awaitable[None]]

_PAID = frozenset({"SUCCESS", "REFUND", "PAYERROR"})
_NOTIFIED = {"SUCCESS": "SUCCESS", "REFUND": "SUCCESS", "PAYERROR": "FAIL"}
_STATE_TEXT = {
    "SUCCESS": "支付成功", "REFUND": "转入退款", "NOTPAY": "订单未支付", "CLOSED": "订单已关闭",
    "REVOKED": "已撤销", "USERPAYING": "用户支付中", "PAYERROR": "支付失败",
}  # fmt: skip
_ASKED = {
    ORDER_QUERY_PATH: "out_trade_no",
    REFUND_QUERY_PATH: "out_refund_no",
    DOWNLOAD_BILL_PATH: "bill_date",
}
_ERRORS = {
    "ORDERNOTEXIST": "此交易订单号不存在",
    "REFUNDNOTEXIST": "退款订单查询失败",
    "APPID_MCHID_NOT_MATCH": "appid和mch_id不匹配",
    "SYSTEMERROR": "系统错误",
}


class WeChatPayV2Emulator:
    """WeChat Pay API v2 for one merchant; `api_key` is throwaway and made here unless given."""

    def __init__(
        self,
        *,
        appid: str = testing.APPID,
        mch_id: str = testing.MCH_ID,
        api_key: str | None = None,
        sign_type: SignType = "MD5",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.appid = appid
        self.mch_id = mch_id
        self.api_key = api_key or testing.generate_api_key()
        self.sign_type: SignType = sign_type
        self.clock = clock
        self.orders: dict[str, dict[str, str]] = {}
        self.refunds: dict[str, dict[str, str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.down = False
        self.error: str | None = None
        self.stall: asyncio.Event | None = None
        self.unsigned = False
        self.answer_key: str | None = None
        self.tamper: Callable[[bytes], bytes] | None = None
        self.base_url = EMULATOR_BASE_URL
        self.bill_faults = BillFaults()
        self.no_bill: set[date] = set()
        self._totals: dict[str, int] = {}

    # -- set-up --------------------------------------------------------------------------------

    def account_settings(self) -> dict[str, Any]:
        """Settings of an account of this merchant, pointed at the emulator."""
        return {
            "appid": self.appid,
            "mch_id": self.mch_id,
            "api_key": self.api_key,
            "sign_type": self.sign_type,
            "base_url": self.base_url,
        }

    def _now(self, fmt: str) -> str:
        return datetime.fromtimestamp(self.clock(), BEIJING).strftime(fmt)

    def pay(
        self, out_trade_no: str, *, total_fee: int = 8888, trade_state: str = "SUCCESS", **extra: str
    ) -> dict[str, str]:
        """Create or move an order to `trade_state`; returns its fields (the query answer's)."""
        order = {"out_trade_no": out_trade_no, "trade_state": trade_state,
                 "trade_state_desc": _STATE_TEXT.get(trade_state, trade_state)}  # fmt: skip
        if trade_state in _PAID:
            # Once the buyer is at WeChat Pay's cashier the order has its transaction and amounts.
            order.update(
                transaction_id=testing._transaction_id(self.mch_id, out_trade_no),
                total_fee=str(total_fee), cash_fee=str(total_fee), fee_type="CNY",
                time_end=self._now("%Y%m%d%H%M%S"), openid=testing.OPENID, is_subscribe="N",
                trade_type="JSAPI", bank_type="OTHERS",
            )  # fmt: skip
        order.update(extra)
        self.orders[out_trade_no] = order
        self._totals[out_trade_no] = total_fee  # an unpaid order's answer names no amount; its bill line does
        return order

    def refund(
        self, out_refund_no: str, out_trade_no: str, *, refund_fee: int, refund_status: str = "SUCCESS"
    ) -> dict[str, str]:
        """Create or move a refund of a paid order; returns its fields (the refund notification's)."""
        order = self.orders[out_trade_no]
        if order["trade_state"] == "SUCCESS":
            order["trade_state"], order["trade_state_desc"] = "REFUND", _STATE_TEXT["REFUND"]
        refund = {
            "out_refund_no": out_refund_no,
            "out_trade_no": out_trade_no,
            "refund_id": testing._refund_id(self.mch_id, out_refund_no),
            "refund_fee": str(refund_fee),
            "settlement_refund_fee": str(refund_fee),
            "refund_status": refund_status,
            "refund_recv_accout": "支付用户的零钱",
            "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        }
        if refund_status == "SUCCESS":
            refund["success_time"] = self._now("%Y-%m-%d %H:%M:%S")
        self.refunds[out_refund_no] = refund
        return refund

    # -- notifications -------------------------------------------------------------------------

    def notification(self, *, order: str | None = None, refund: str | None = None) -> bytes:
        """The notification WeChat Pay sends for an order's (or a refund's) current state."""
        if refund is not None:
            fields = self.refunds[refund]
            paid = self.orders[fields["out_trade_no"]]
            return testing.make_v2_refund_notify(
                self.api_key, appid=self.appid, mch_id=self.mch_id, out_trade_no=fields["out_trade_no"],
                out_refund_no=refund, total_fee=int(paid["total_fee"]), refund_fee=int(fields["refund_fee"]),
                refund_status=fields["refund_status"], success_time=fields.get("success_time"),
                refund_id=fields["refund_id"], transaction_id=paid["transaction_id"],
            )  # fmt: skip
        if order is None:
            raise ValueError("name an order or a refund")
        fields = self.orders[order]
        state = fields["trade_state"]
        if state not in _NOTIFIED:
            raise ValueError(f"WeChat Pay sends no notification for trade_state {state}")
        # Every field the answer has, so the notification and the answer describe one payment.
        payment: dict[str, Any] = {
            k: v for k, v in fields.items() if k not in ("trade_state", "trade_state_desc")
        }
        payment.pop("total_fee")
        return testing.make_v2_payment_notify(
            self.api_key, appid=self.appid, mch_id=self.mch_id, total_fee=int(fields["total_fee"]),
            result_code=_NOTIFIED[state], sign_type=self.sign_type, **payment,
        )  # fmt: skip

    def courier(
        self, client: httpx.AsyncClient, *, clock: Clock | None = None, timeout: float = 10.0
    ) -> NotificationCourier:
        """Sends notifications as WeChat Pay v2 does: resent on RESEND_SCHEDULE until acknowledged."""
        return NotificationCourier(client, RESEND_SCHEDULE, clock=clock, timeout=timeout)

    def notification_request(self, *, order: str | None = None, refund: str | None = None) -> DemoRequest:
        """The notification of the current state, as the request WeChat Pay POSTs."""
        body = self.notification(order=order, refund=refund)
        return DemoRequest("notification", "notify", headers={"content-type": "text/xml"}, body=body)

    async def push(
        self,
        client: httpx.AsyncClient,
        notify_url: str,
        *,
        order: str | None = None,
        refund: str | None = None,
        copies: int = 1,
        drop: bool = False,
        before: Awaitable[object] | None = None,
    ) -> list[int]:
        """POST the notification once (no resends: `courier` resends), `copies` times (a duplicate: 2);
        `drop` sends nothing; `before` is awaited first (a delay). Returns the HTTP statuses received."""
        request = self.notification_request(order=order, refund=refund)
        return await push_once(client, notify_url, request, copies=copies, drop=drop, before=before)

    # -- the API -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: SendAsgi) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if self.stall is not None:
            await self.stall.wait()
        if self.down:
            await _reply(send, 503, b"<html>503 Service Unavailable</html>", "text/html")
            return
        if scope["method"] != "POST" or path not in (ORDER_QUERY_PATH, REFUND_QUERY_PATH, DOWNLOAD_BILL_PATH):
            await _reply(send, 404, b"<html>404 Not Found</html>", "text/html")
            return
        answer = self._answer(path, body)
        await _reply(send, 200, answer, "text/xml" if answer.startswith(b"<xml>") else "text/plain")

    def _answer(self, path: str, body: bytes) -> bytes:
        try:
            request = parse_flat_xml(body, "xml", what="request")
        except MalformedNotification:
            return _refused("XML格式错误")
        asked = request.get(_ASKED[path], "")
        self.requests.append((path, asked))
        named = request.get("sign_type") or "MD5"
        if named not in SIGN_TYPES:
            return _refused("签名类型错误")
        checked: SignType = named
        try:
            verify(request, self.api_key.encode("ascii"), checked, what="request")
        except VerificationError:
            return _refused("签名错误")
        if (request.get("appid"), request.get("mch_id")) != (self.appid, self.mch_id):
            return self._signed(checked, _failed("APPID_MCHID_NOT_MATCH"))
        if path == DOWNLOAD_BILL_PATH:
            return self._bill(request)
        if self.error is not None:
            return self._signed(checked, _failed(self.error))
        if path == ORDER_QUERY_PATH:
            order = self.orders.get(asked)
            return self._signed(checked, _failed("ORDERNOTEXIST") if order is None else order)
        return self._signed(checked, self._refund_answer(asked))

    def _refund_answer(self, out_refund_no: str) -> dict[str, str]:
        refund = self.refunds.get(out_refund_no)
        if refund is None:
            return _failed("REFUNDNOTEXIST")
        order = self.orders[refund["out_trade_no"]]
        answer = {name: order[name] for name in ("out_trade_no", "transaction_id", "total_fee", "cash_fee")}
        listed = [
            fields for fields in self.refunds.values() if fields["out_trade_no"] == refund["out_trade_no"]
        ]
        answer["refund_count"] = str(len(listed))
        for n, fields in enumerate(listed):
            for name, value in fields.items():
                if name != "out_trade_no":
                    answer[f"refund_success_time_{n}" if name == "success_time" else f"{name}_{n}"] = value
        return answer

    # -- bills ---------------------------------------------------------------------------------

    def trade_bill(self, day: date) -> bytes:
        """The ALL trade bill of `day` as the emulator serves it (ledger plus `bill_faults`)."""
        orders = [self._paid(order) for order in self.orders.values()]
        refunds = [self._refunded(refund) for refund in self.refunds.values()]
        return trade_bill(day, orders, refunds, self.bill_faults)

    def _bill(self, request: Mapping[str, str]) -> bytes:
        try:
            day = datetime.strptime(request.get("bill_date", ""), "%Y%m%d").date()
        except ValueError:
            return to_xml(
                {"return_code": "FAIL", "return_msg": "invalid bill_date", "error_code": "20001"}
            ).encode()
        if request.get("bill_type", "ALL") != "ALL":
            return to_xml(
                {"return_code": "FAIL", "return_msg": "invalid bill_type", "error_code": "20001"}
            ).encode()
        if day >= datetime.fromtimestamp(self.clock(), BEIJING).date() or day in self.no_bill:
            return to_xml({"return_code": "FAIL", "return_msg": NO_BILL, "error_code": "20002"}).encode()
        data = self.trade_bill(day)
        return gzip.compress(data, mtime=0) if request.get("tar_type") == "GZIP" else data

    def _paid(self, order: Mapping[str, str]) -> Paid:
        number = order["out_trade_no"]
        paid = order["trade_state"] in ("SUCCESS", "REFUND") and "time_end" in order
        return Paid(
            order=number, total=int(order.get("total_fee") or self._totals.get(number, 0)),
            at=datetime.strptime(order["time_end"], "%Y%m%d%H%M%S").replace(tzinfo=BEIJING) if paid else None,
            transaction_id=order.get("transaction_id") or testing._transaction_id(self.mch_id, number),
            appid=self.appid, mchid=self.mch_id, openid=order.get("openid", ""),
        )  # fmt: skip

    def _refunded(self, refund: Mapping[str, str]) -> Refunded:
        done = refund["refund_status"] == "SUCCESS" and "success_time" in refund
        moment = datetime.strptime(refund["success_time"], "%Y-%m-%d %H:%M:%S") if done else None
        return Refunded(
            order=refund["out_trade_no"],
            transaction_id=self.orders[refund["out_trade_no"]]["transaction_id"],
            out_refund_no=refund["out_refund_no"], refund_id=refund["refund_id"],
            refund=int(refund["refund_fee"]), at=moment.replace(tzinfo=BEIJING) if moment else None,
            status=refund["refund_status"], appid=self.appid, mchid=self.mch_id,
        )  # fmt: skip

    def _signed(self, sign_type: SignType, fields: Mapping[str, str]) -> bytes:
        answer = {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "appid": self.appid,
            "mch_id": self.mch_id,
            "nonce_str": secrets.token_hex(16),
            "result_code": "FAIL" if "err_code" in fields else "SUCCESS",
            **fields,
        }
        if not self.unsigned:
            key = (self.answer_key or self.api_key).encode("ascii")
            answer["sign"] = sign(answer, key, sign_type)
        raw = to_xml(answer).encode()
        return self.tamper(raw) if self.tamper is not None else raw


def _failed(err_code: str) -> dict[str, str]:
    return {"err_code": err_code, "err_code_des": _ERRORS.get(err_code, err_code)}


def _refused(message: str) -> bytes:
    """WeChat Pay's refusal of the request itself: return_code FAIL, and no sign."""
    return to_xml({"return_code": "FAIL", "return_msg": message}).encode()


async def _reply(send: SendAsgi, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode("ascii")), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def local_v2_emulator(settings: WeChatPayV2Settings, directory: Path) -> LocalEmulator:
    """The emulator of an account (`paynotify emulate`): the API key signs both ways, so it needs
    nothing from `directory`."""
    emulator = WeChatPayV2Emulator(
        appid=settings.appid, mch_id=settings.mch_id, api_key=settings.api_key.get_secret_value(),
        sign_type=settings.sign_type,
    )  # fmt: skip
    emulator.base_url = settings.base_url

    xml = {"content-type": "text/xml"}

    def pay(order_id: str, amount: Decimal, at: datetime) -> DemoRequest:
        emulator.pay(order_id, total_fee=int(amount * 100))
        body = emulator.notification(order=order_id)
        return DemoRequest(f"payment SUCCESS {order_id}", "notify", headers=xml, body=body)

    def refund(order_id: str, refund_id: str, amount: Decimal, at: datetime) -> DemoRequest:
        emulator.refund(refund_id, order_id, refund_fee=int(amount * 100))
        body = emulator.notification(refund=refund_id)
        return DemoRequest(f"refund SUCCESS {refund_id}", "notify", headers=xml, body=body)

    return LocalEmulator(emulator, settings.base_url, pay, refund, resend=RESEND_SCHEDULE)
