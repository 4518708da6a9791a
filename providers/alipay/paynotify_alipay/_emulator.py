"""A local Alipay gateway, as an ASGI app: trades, refunds, signed query answers, pushed notifications.

    emulator = testing.AlipayEmulator()
    notifier.add_account("shop", "alipay", **emulator.account_settings())
    emulator.pay("order-1", total_amount="88.88")            # the buyer paid
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator))
    # queries of account "shop" now reach the emulator: base_url is emulator.base_url

It answers `alipay.trade.query` and `alipay.trade.fastpay.refund.query` as Alipay does (PROTOCOLS.md,
"Asking the provider"): the request's `sign` is checked with the app's public key over every
parameter but sign (in certificate mode app_cert_sn and alipay_root_cert_sn must name the
configured certificates); a bad one gets an unsigned 40002 isv.invalid-signature. Every other answer
is `{"<method>_response": {...}, "sign": "..."}` signed with the emulator's throwaway Alipay key over
the response object's exact text: an unknown trade 40004 ACQ.TRADE_NOT_EXIST, an unknown refund
request 10000 without refund fields (Alipay's own answer).

`notification(...)` is the async notification of a trade's (or a refund's) current state, signed
with the same key, and `push(...)` POSTs it once to a notify_url: dropped, duplicated, or after an
awaitable; `courier(...)` resends `notification_request(...)` on RESEND_SCHEDULE until `success`.

`alipay.data.dataservice.bill.downloadurl.query` (bill_type trade) answers, signed, a
`bill_download_url` on the emulator, whose GET serves the day's trade bill written from the ledger
in Alipay's format (a ZIP of GBK CSV files, `_emulator_bills`), with the discrepancies of
`bill_faults`. A day not over yet (Beijing time, by `clock`) or in `no_bill` answers 40004
isp.bill_not_exist; a past day without trades has a bill with an empty table.

Faults, for tests: `down` (HTTP 503), `error` (a sub_code answered, signed, to every query, e.g.
ACQ.SYSTEM_ERROR), `stall` (an asyncio.Event awaited before answering), `unsigned` (no sign),
`answer_key` (answers signed with another key: a forger's), `tamper` (text -> text applied after
signing: a forged or re-serialised answer). `requests` lists (method, biz_content) of each query.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from paynotify import BEIJING, DemoRequest, LocalEmulator, canonical_b64decode
from paynotify.testing import Clock, NotificationCourier, ResendSchedule, push_once
from paynotify_alipay import testing
from paynotify_alipay._api import BILL_QUERY, NO_BILL, REFUND_QUERY, TRADE_QUERY
from paynotify_alipay._certs import cert_sn, root_cert_sn
from paynotify_alipay._emulator_bills import BillFaults, trade_bill_zip
from paynotify_alipay._settings import AlipaySettings
from paynotify_alipay._signature import SignType, sign

__all__ = [
    "BILL_PATH",
    "EMULATOR_BASE_URL",
    "RESEND_SCHEDULE",
    "AlipayEmulator",
    "BillFaults",
    "local_emulator",
]

EMULATOR_BASE_URL = "http://alipay.emulator/gateway.do"
"""The base_url accounts are given (an EmulatorTransport routes its host to the emulator)."""
BILL_PATH = "/downloadBillFile.resource"
"""Where the emulator's bill_download_url points (GET, on the gateway's host)."""

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
SendAsgi = Callable[[Mapping[str, Any]], Awaitable[None]]

RESEND_SCHEDULE = ResendSchedule(
    "alipay",
    delays=(4 * 60, 10 * 60, 10 * 60, 3600, 2 * 3600, 6 * 3600, 15 * 3600),
    acknowledged=lambda status, body: status == 200 and body.strip() == b"success",
)
"""Alipay resends until the body `success`: 8 sends within 25 h (4m, 10m, 10m, 1h, 2h, 6h, 15h apart)."""
_FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
_TIME = "%Y-%m-%d %H:%M:%S"
_HASHES = {"RSA2": hashes.SHA256, "RSA": hashes.SHA1}
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", re.DOTALL)


class AlipayEmulator:
    """Alipay for one app; the Alipay key and the app's key are throwaway and made here unless given."""

    def __init__(
        self,
        *,
        app_id: str = "2021000000000001",
        alipay_key: RSAPrivateKey | None = None,
        app_key: RSAPrivateKey | None = None,
        sign_type: SignType = "RSA2",
        certificate_mode: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.alipay_key = alipay_key or testing.generate_key()
        self.app_key = app_key or testing.generate_key()
        self.sign_type: SignType = sign_type
        self.certificate_mode = certificate_mode
        self.clock = clock
        self.trades: dict[str, dict[str, str]] = {}
        self.refunds: dict[tuple[str, str], dict[str, str]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.down = False
        self.error: str | None = None
        self.stall: asyncio.Event | None = None
        self.unsigned = False
        self.answer_key: RSAPrivateKey | None = None
        self.tamper: Callable[[str], str] | None = None
        self.base_url = EMULATOR_BASE_URL
        self.bill_faults = BillFaults()
        self.no_bill: set[date] = set()
        self._bill_tokens: dict[str, date] = {}
        chain = testing.certificate_pem(self.alipay_key, chain=True)
        self.alipay_cert, self.root_cert = _PEM.findall(chain)
        self.app_cert = testing.certificate_pem(self.app_key)

    # -- set-up --------------------------------------------------------------------------------

    def account_settings(self) -> dict[str, Any]:
        """Settings of an account of this app, pointed at the emulator, with the app's private key."""
        settings: dict[str, Any] = {
            "app_id": self.app_id,
            "sign_type": self.sign_type,
            "app_private_key": testing.private_key_pem(self.app_key),
            "base_url": self.base_url,
        }
        if self.certificate_mode:
            settings |= {"alipay_public_cert": self.alipay_cert + self.root_cert,
                         "alipay_root_cert": self.root_cert, "app_cert": self.app_cert}  # fmt: skip
        else:
            settings["alipay_public_key"] = testing.public_key_pem(self.alipay_key)
        return settings

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), BEIJING).strftime(_TIME)

    def pay(
        self, out_trade_no: str, *, total_amount: str = "88.88", trade_status: str = "TRADE_SUCCESS"
    ) -> dict[str, str]:
        """Create or move a trade to `trade_status`; returns its fields (the query answer's)."""
        trade = {
            "out_trade_no": out_trade_no,
            "trade_no": testing._trade_no(self.app_id, out_trade_no),
            "trade_status": trade_status,
            "total_amount": total_amount,
            "buyer_user_id": testing.BUYER_ID,
            "buyer_logon_id": "pay***@example.com",
        }
        if trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            trade["send_pay_date"] = self._now()
            trade["buyer_pay_amount"] = total_amount
        self.trades[out_trade_no] = trade
        return trade

    def refund(self, out_request_no: str, out_trade_no: str, *, refund_amount: str) -> dict[str, str]:
        """A refund of a paid trade, succeeded; returns its fields (the refund query answer's)."""
        trade = self.trades[out_trade_no]
        refund = {
            "out_trade_no": out_trade_no,
            "trade_no": trade["trade_no"],
            "out_request_no": out_request_no,
            "total_amount": trade["total_amount"],
            "refund_amount": refund_amount,
            "refund_status": "REFUND_SUCCESS",
            "gmt_refund_pay": self._now(),
        }
        self.refunds[(out_trade_no, out_request_no)] = refund
        return refund

    # -- notifications -------------------------------------------------------------------------

    def notification(self, *, order: str, refund: str | None = None) -> bytes:
        """The async notification Alipay sends for the trade's (or the refund's) current state."""
        trade = self.trades[order]
        extra: dict[str, str | None] = {"gmt_payment": trade.get("send_pay_date")}
        if refund is not None:
            done = self.refunds[(order, refund)]
            refunded = sum(float(r["refund_amount"]) for (o, _), r in self.refunds.items() if o == order)
            extra |= {
                "out_biz_no": refund,
                "refund_fee": f"{refunded:.2f}",
                "gmt_refund": done["gmt_refund_pay"],
            }
        fields: dict[str, Any] = extra  # str | None, as make_notify's **extra takes
        return testing.make_notify(
            self.alipay_key, app_id=self.app_id, out_trade_no=order, total_amount=trade["total_amount"],
            trade_status=trade["trade_status"], sign_type=self.sign_type, **fields,
        )  # fmt: skip

    def courier(
        self, client: httpx.AsyncClient, *, clock: Clock | None = None, timeout: float = 10.0
    ) -> NotificationCourier:
        """Sends this app's notifications as Alipay does: resent on RESEND_SCHEDULE until `success`."""
        return NotificationCourier(client, RESEND_SCHEDULE, clock=clock, timeout=timeout)

    def notification_request(self, *, order: str, refund: str | None = None) -> DemoRequest:
        """The notification of the current state, as the request Alipay POSTs."""
        return DemoRequest(
            "notification", "notify", headers=_FORM, body=self.notification(order=order, refund=refund)
        )

    async def push(
        self,
        client: httpx.AsyncClient,
        notify_url: str,
        *,
        order: str,
        refund: str | None = None,
        copies: int = 1,
        drop: bool = False,
        before: Awaitable[object] | None = None,
    ) -> list[int]:
        """POST the notification of the current state once (no resends; `courier` resends), `copies`
        times; `drop` sends nothing; `before` is awaited first (a delay). Returns the HTTP statuses."""
        request = self.notification_request(order=order, refund=refund)
        return await push_once(client, notify_url, request, copies=copies, drop=drop, before=before)

    # -- the gateway ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: SendAsgi) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope.get("method") == "GET" and scope.get("path") == BILL_PATH:
            status, data = self._bill_file(scope.get("query_string", b"").decode("ascii"))
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/octet-stream")]})  # fmt: skip
            await send({"type": "http.response.body", "body": data})
            return
        status, text = await self._answer(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/html;charset=utf-8")]})  # fmt: skip
        await send({"type": "http.response.body", "body": text.encode("utf-8")})

    async def _answer(self, body: bytes) -> tuple[int, str]:
        if self.stall is not None:
            await self.stall.wait()
        if self.down:
            return 503, "Service Unavailable"
        params = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))
        method = params.get("method", "")
        key = method.replace(".", "_") + "_response"
        if not self._request_verifies(params):
            refused = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
                       "sub_msg": "验签出错"}  # fmt: skip
            return 200, json.dumps({key: refused}, ensure_ascii=False)
        biz = json.loads(params.get("biz_content", "{}"))
        self.requests.append((method, biz))
        fields = self._fields(method, biz)
        return 200, self._signed(key, fields)

    def _request_verifies(self, params: Mapping[str, str]) -> bool:
        signature = canonical_b64decode(params.get("sign", ""))
        if signature is None or params.get("app_id") != self.app_id:
            return False
        if self.certificate_mode and (
            params.get("app_cert_sn") != cert_sn(self.app_cert)
            or params.get("alipay_root_cert_sn") != root_cert_sn(self.root_cert)
        ):
            return False
        content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v)
        hash_name = _HASHES.get(params.get("sign_type", ""))
        if hash_name is None:
            return False
        try:
            self.app_key.public_key().verify(
                signature, content.encode("utf-8"), padding.PKCS1v15(), hash_name()
            )
        except InvalidSignature:
            return False
        return True

    def _fields(self, method: str, biz: Mapping[str, Any]) -> dict[str, Any]:
        if self.error is not None:
            return {"code": "40004", "msg": "Business Failed", "sub_code": self.error, "sub_msg": "emulated"}
        ok = {"code": "10000", "msg": "Success"}
        if method == TRADE_QUERY:
            trade = self.trades.get(str(biz.get("out_trade_no", "")))
            if trade is None:
                return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                        "sub_msg": "交易不存在", "out_trade_no": biz.get("out_trade_no", "")}  # fmt: skip
            return ok | trade
        if method == REFUND_QUERY:
            order, request = str(biz.get("out_trade_no", "")), str(biz.get("out_request_no", ""))
            refund = self.refunds.get((order, request))
            return ok | (refund if refund is not None else {})
        if method == BILL_QUERY:
            return self._bill_answer(biz)
        return {"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid-method"}

    # -- bills ---------------------------------------------------------------------------------

    def _bill_answer(self, biz: Mapping[str, Any]) -> dict[str, Any]:
        try:
            day = date.fromisoformat(str(biz.get("bill_date", "")))
        except ValueError:
            day = None
        if biz.get("bill_type") != "trade" or day is None:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid-arguments",
                    "sub_msg": "参数不合法"}  # fmt: skip
        today = datetime.fromtimestamp(self.clock(), BEIJING).date()
        if day >= today or day in self.no_bill:
            return {"code": "40004", "msg": "Business Failed", "sub_code": NO_BILL, "sub_msg": "账单不存在"}
        token = secrets.token_hex(16)
        self._bill_tokens[token] = day
        url = (f"{self.base_url.rsplit('/', 1)[0]}{BILL_PATH}?bizType=trade&fileType=csv.zip"
               f"&bizDates={day:%Y%m%d}&token={token}")  # fmt: skip
        return {"code": "10000", "msg": "Success", "bill_download_url": url}

    def bill_zip(self, day: date) -> bytes:
        """The trade bill ZIP of `day` as the emulator serves it (ledger plus `bill_faults`)."""
        pid = "2088" + self.app_id[-12:]
        return trade_bill_zip(
            pid, day, self.trades.values(), self.refunds.values(), self.bill_faults,
            exported=datetime.fromtimestamp(self.clock(), BEIJING).strftime("%Y年%m月%d日 %H:%M:%S"),
        )  # fmt: skip

    def _bill_file(self, query: str) -> tuple[int, bytes]:
        day = self._bill_tokens.pop(dict(parse_qsl(query)).get("token", ""), None)
        if day is None:  # Alipay's URLs expire after about 30 s; the emulator's work once
            return 404, "下载超时, 请重新下载".encode()
        return 200, self.bill_zip(day)

    def _signed(self, key: str, fields: Mapping[str, Any]) -> str:
        value = json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":"))
        text = f'{{"{key}":{value}'
        if not self.unsigned:
            signer = self.answer_key or self.alipay_key
            text += f',"sign":"{sign(value.encode("utf-8"), signer, self.sign_type)}"'
        if self.certificate_mode:
            text += f',"alipay_cert_sn":"{cert_sn(self.alipay_cert)}"'
        text += "}"
        return self.tamper(text) if self.tamper is not None else text


def local_emulator(settings: AlipaySettings, directory: Path) -> LocalEmulator | None:
    """The emulator of an account `paynotify init` wrote into `directory` (`paynotify emulate`):
    it signs with Alipay's side of the account's key (`PROVIDER_SIDE_KEY`) and checks requests with
    the app's key. None for an account without an app private key or that file (or in certificate
    mode: the emulator would need the certificates' keys)."""
    path = directory / testing.PROVIDER_SIDE_KEY
    if settings.app_key is None or settings.alipay_cert_sn is not None or not path.is_file():
        return None
    alipay_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(alipay_key, RSAPrivateKey):
        return None
    emulator = AlipayEmulator(
        app_id=settings.app_id, alipay_key=alipay_key, app_key=settings.app_key, sign_type=settings.sign_type
    )
    emulator.base_url = settings.base_url

    def pay(order_id: str, amount: Decimal, at: datetime) -> DemoRequest:
        emulator.pay(order_id, total_amount=f"{amount:.2f}")
        body = emulator.notification(order=order_id)
        return DemoRequest(f"TRADE_SUCCESS {order_id}", "notify", headers=_FORM, body=body)

    def refund(order_id: str, refund_id: str, amount: Decimal, at: datetime) -> DemoRequest:
        emulator.refund(refund_id, order_id, refund_amount=f"{amount:.2f}")
        body = emulator.notification(order=order_id, refund=refund_id)
        return DemoRequest(f"refund {refund_id} of {order_id}", "notify", headers=_FORM, body=body)

    return LocalEmulator(emulator, settings.base_url, pay, refund, resend=RESEND_SCHEDULE)
