"""A local WeChat Pay API v3, as an ASGI app: orders, refunds, signed answers, pushed notifications.

    emulator = testing.WeChatPayV3Emulator()
    notifier.add_account("shop", "wechatpay-v3", **emulator.account_settings())
    emulator.pay("order-1", total=8888)                   # the buyer paid
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator))
    # queries of account "shop" now reach the emulator: base_url is emulator.base_url

It answers what paynotify asks, as WeChat Pay does (PROTOCOLS.md, "Asking the provider"):
`GET /v3/pay/transactions/out-trade-no/{no}?mchid=`, the partner form
`/v3/pay/partner/transactions/out-trade-no/{no}?sp_mchid=&sub_mchid=`,
`GET /v3/refund/domestic/refunds/{no}[?sub_mchid=]` and `GET /v3/certificates`. Each request's
Authorization is checked with the merchant's public key (401 SIGN_ERROR otherwise); each answer,
404s included, is signed in its Wechatpay-* headers with the emulator's platform certificate (or
public key), over the exact bytes sent. Unknown orders get 404 ORDER_NOT_EXIST, unknown refunds
404 RESOURCE_NOT_EXISTS.

`notification(...)` is the signed notification of an order's or refund's current state (the query
answer's fields); `push(...)` POSTs it once, `courier(...)` resends it on RESEND_SCHEDULE (faults).

`GET /v3/bill/tradebill?bill_date=&bill_type=ALL[&tar_type=GZIP]` answers, signed, the SHA1 of the
day's trade bill and a `download_url` on the emulator, whose signed GET serves the bill written
from the ledger in WeChat Pay's format (`_emulator_bills`), with the discrepancies of
`bill_faults` (`wrong_hash`: the signed hash is another file's). A day not over yet (Beijing time,
by `clock`) answers 400 STATEMENT_CREATING, a day in `no_bill` 400 NO_STATEMENT_EXIST.

Faults, for tests: `down` (503 SYSTEM_ERROR), `stall` (an asyncio.Event awaited before answering:
a provider that is slow until the test says so), `unsigned` (no signature headers), `tamper`
(bytes -> bytes applied after signing: a forged or re-serialised answer), `answer_timestamp`
(sign with this unix time: a stale answer). `requests` lists (method, path) received.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from paynotify import BEIJING, DemoRequest, LocalEmulator
from paynotify.testing import Clock, NotificationCourier, push_once
from paynotify_wechatpay import testing
from paynotify_wechatpay._emulator_bills import BillFaults, Paid, Refunded, fund_flow_bill, trade_bill
from paynotify_wechatpay._emulator_resends import V3_RESEND_SCHEDULE as RESEND_SCHEDULE
from paynotify_wechatpay._v3_api_auth import parse_authorization, verify_request_signature
from paynotify_wechatpay._v3_bills import FUND_FLOW_BILL_PATH, TRADE_BILL_PATH
from paynotify_wechatpay._v3_crypto import encrypt_resource
from paynotify_wechatpay._v3_settings import WeChatPayV3Settings

__all__ = [
    "BILL_DOWNLOAD_PATH",
    "EMULATOR_BASE_URL",
    "RESEND_SCHEDULE",
    "WeChatPayV3Emulator",
    "local_v3_emulator",
]

EMULATOR_BASE_URL = "http://wechatpay-v3.emulator"
"""The base_url accounts are given; any host works, the ASGI transport ignores it."""
BILL_DOWNLOAD_PATH = "/v3/billdownload/file"
_TOLERANCE = 300

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
SendAsgi = Callable[[Mapping[str, Any]], Awaitable[None]]


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class WeChatPayV3Emulator:
    """WeChat Pay API v3 for one merchant (or one service provider, `partner=True`).

    Keys are throwaway and made here unless given: `signing_key` signs answers and notifications
    (a platform certificate by default; `testing.generate_v3_public_key()` for public-key mode),
    `merchant_key` is the merchant's API key pair whose public half checks requests.
    """

    def __init__(
        self,
        *,
        mchid: str = testing.MCH_ID,
        appid: str = testing.APPID,
        apiv3_key: str | None = None,
        signing_key: testing.V3SigningKey | None = None,
        merchant_key: rsa.RSAPrivateKey | None = None,
        merchant_serial: str | None = None,
        partner: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mchid = mchid
        self.appid = appid
        self.apiv3_key = apiv3_key or testing.generate_apiv3_key()
        self.signing_key = signing_key or testing.generate_v3_platform_certificate()
        self.platform_certificates: list[testing.V3SigningKey] = (
            [self.signing_key] if self.signing_key.certificate_pem is not None else []
        )
        self.merchant_key = merchant_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.merchant_serial = merchant_serial or secrets.token_hex(20).upper()
        self.partner = partner
        self.clock = clock
        self.orders: dict[tuple[str | None, str], dict[str, Any]] = {}
        self.refunds: dict[tuple[str | None, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.down = False
        self.stall: asyncio.Event | None = None
        self.unsigned = False
        self.tamper: Callable[[bytes], bytes] | None = None
        self.answer_timestamp: int | None = None
        self.base_url = EMULATOR_BASE_URL
        self.bill_faults = BillFaults()
        self.no_bill: set[date] = set()
        self._bill_files: dict[str, bytes] = {}

    # -- set-up --------------------------------------------------------------------------------

    def account_settings(self, *, trust: str = "configured", sub_mchid: str | None = None) -> dict[str, Any]:
        """Settings of an account of this merchant, pointed at the emulator. `trust`: "configured"
        (the signing key is configured), or "download" (no WeChat Pay key: certificates are
        downloaded)."""
        private = self.merchant_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        ids = (
            {"sp_mchid": self.mchid, "sp_appid": self.appid, "sub_mchid": sub_mchid}
            if self.partner
            else {"mchid": self.mchid, "appid": self.appid}
        )
        keys = self.signing_key.account_settings() if trust == "configured" else {}
        return {
            **{k: v for k, v in ids.items() if v is not None},
            "apiv3_key": self.apiv3_key,
            **keys,
            "merchant_private_key": private,
            "merchant_serial": self.merchant_serial,
            "base_url": self.base_url,
        }

    def rotate_certificate(self) -> testing.V3SigningKey:
        """A new platform certificate signs from now on; the old one stays listed (WeChat Pay's rotation)."""
        self.signing_key = testing.generate_v3_platform_certificate()
        self.platform_certificates.append(self.signing_key)
        return self.signing_key

    def pay(
        self,
        out_trade_no: str,
        *,
        total: int = 8888,
        trade_state: str = "SUCCESS",
        sub_mchid: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Create or move an order to `trade_state`; returns its fields (the query answer's).
        A paid order's success_time is the emulator's `clock`."""
        if trade_state in ("SUCCESS", "REFUND"):
            extra.setdefault("success_time", self._now())
        resource = testing.v3_transaction_resource(
            appid=self.appid, mchid=self.mchid, out_trade_no=out_trade_no, total=total,
            trade_state=trade_state, sub_mchid=sub_mchid, **extra,
        )  # fmt: skip
        self.orders[(sub_mchid, out_trade_no)] = resource
        return resource

    def refund(
        self, out_refund_no: str, out_trade_no: str, *, refund: int, refund_status: str = "SUCCESS",
        sub_mchid: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Create or move a refund of an existing order; returns its notification resource."""
        order = self.orders[(sub_mchid, out_trade_no)]
        resource = testing.v3_refund_resource(
            mchid=self.mchid, out_trade_no=out_trade_no, out_refund_no=out_refund_no,
            total=order["amount"]["total"], refund=refund, refund_status=refund_status, sub_mchid=sub_mchid,
            success_time=self._now() if refund_status == "SUCCESS" else None,
        )  # fmt: skip
        self.refunds[(sub_mchid, out_refund_no)] = resource
        return resource

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), BEIJING).isoformat(timespec="seconds")

    # -- notifications -------------------------------------------------------------------------

    def notification(
        self, *, order: str | None = None, refund: str | None = None, sub_mchid: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The signed notification of an order's (or a refund's) current state."""
        if refund is not None:
            resource = self.refunds[(sub_mchid, refund)]
            event_type, summary, original = f"REFUND.{resource['refund_status']}", "退款状态变更", "refund"
        elif order is not None:
            resource = self.orders[(sub_mchid, order)]
            state = resource["trade_state"]
            event_type = "TRANSACTION.SUCCESS" if state == "SUCCESS" else "TRANSACTION.FAIL"
            summary, original = "支付成功", "transaction"
        else:
            raise ValueError("name an order or a refund")
        return testing.make_v3_notify(
            self.signing_key, self.apiv3_key, resource, event_type=event_type, summary=summary,
            original_type=original, timestamp=int(self.clock()),
        )  # fmt: skip

    def courier(
        self, client: httpx.AsyncClient, *, clock: Clock | None = None, timeout: float = 10.0
    ) -> NotificationCourier:
        """Sends notifications as WeChat Pay v3 does: resent on RESEND_SCHEDULE until acknowledged."""
        return NotificationCourier(client, RESEND_SCHEDULE, clock=clock, timeout=timeout)

    def notification_request(
        self, *, order: str | None = None, refund: str | None = None, sub_mchid: str | None = None
    ) -> DemoRequest:
        """The notification of the current state, as the request WeChat Pay POSTs."""
        headers, body = self.notification(order=order, refund=refund, sub_mchid=sub_mchid)
        return DemoRequest("notification", "notify", headers=headers, body=body)

    async def push(
        self, client: httpx.AsyncClient, notify_url: str, *, order: str | None = None,
        refund: str | None = None, sub_mchid: str | None = None, copies: int = 1, drop: bool = False,
        before: Awaitable[object] | None = None,
    ) -> list[int]:  # fmt: skip
        """POST the notification once (no resends: `courier` resends), `copies` times (a duplicate: 2);
        `drop` sends nothing; `before` is awaited first (a delay). Returns the HTTP statuses received."""
        request = self.notification_request(order=order, refund=refund, sub_mchid=sub_mchid)
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
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        path_query = raw_path.decode("ascii") + (("?" + query.decode("ascii")) if query else "")
        self.requests.append((scope["method"], path_query))
        if self.stall is not None:
            await self.stall.wait()
        if path_query.startswith(BILL_DOWNLOAD_PATH + "?") and not self.down:
            await self._bill_download(scope, send, path_query)
            return
        status, answer = self._answer(scope, path_query, body)
        await self._reply(send, status, answer)

    def _answer(self, scope: Scope, path_query: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.down:
            return 503, {"code": "SYSTEM_ERROR", "message": "系统错误"}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._authenticate(headers, scope["method"], path_query, body)
        if refusal is not None:
            return 401, {"code": "SIGN_ERROR", "message": refusal}
        path, _, query_text = path_query.partition("?")
        query = dict(parse_qsl(query_text))
        if scope["method"] != "GET":
            return 405, {"code": "NOT_FOUND", "message": "只支持 GET"}
        if path == "/v3/certificates":
            return 200, self._certificates()
        if path in (TRADE_BILL_PATH, FUND_FLOW_BILL_PATH):
            return self._bill_answer(query, fund_flow=path == FUND_FLOW_BILL_PATH)
        for prefix, partner in (
            ("/v3/pay/partner/transactions/out-trade-no/", True),
            ("/v3/pay/transactions/out-trade-no/", False),
        ):
            if path.startswith(prefix):
                return self._order(unquote(path[len(prefix) :]), query, partner)
        if path.startswith("/v3/refund/domestic/refunds/"):
            return self._refund(unquote(path[len("/v3/refund/domestic/refunds/") :]), query)
        return 404, {"code": "NOT_FOUND", "message": "URL不存在"}

    def _authenticate(
        self, headers: Mapping[str, str], method: str, path_query: str, body: bytes
    ) -> str | None:
        fields = parse_authorization(headers.get("authorization", ""))
        if fields is None:
            return "Authorization 缺失或格式错误"
        if fields["mchid"] != self.mchid:
            return f"商户号 {fields['mchid']} 与请求不符"
        if fields["serial_no"].upper() != self.merchant_serial.upper():
            return f"商户证书序列号 {fields['serial_no']} 有误"
        if not fields["timestamp"].isdigit() or abs(self.clock() - int(fields["timestamp"])) > _TOLERANCE:
            return "timestamp 超出有效期"
        public = self.merchant_key.public_key()
        if not verify_request_signature(fields, public, method=method, path_query=path_query, body=body):
            return "签名错误"
        return None

    def _order(
        self, out_trade_no: str, query: Mapping[str, str], partner: bool
    ) -> tuple[int, dict[str, Any]]:
        if partner != self.partner:
            return 403, {"code": "NO_AUTH", "message": "商户无此接口权限"}
        if partner:
            if query.get("sp_mchid") != self.mchid or not query.get("sub_mchid"):
                return 400, {"code": "PARAM_ERROR", "message": "sp_mchid 或 sub_mchid 有误"}
            key: tuple[str | None, str] = (query["sub_mchid"], out_trade_no)
        else:
            if query.get("mchid") != self.mchid:
                return 400, {"code": "PARAM_ERROR", "message": "mchid 与 Authorization 不符"}
            key = (None, out_trade_no)
        order = self.orders.get(key)
        if order is None:
            return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
        return 200, order

    def _refund(self, out_refund_no: str, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        resource = self.refunds.get((query.get("sub_mchid") if self.partner else None, out_refund_no))
        if resource is None:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}
        # The query answer's form: `status`, no merchant ids, a few more fields than the notification.
        answer = {
            k: v for k, v in resource.items() if k not in ("mchid", "sp_mchid", "sub_mchid", "refund_status")
        }
        amount = dict(resource["amount"])
        amount.update(
            {"settlement_refund": amount["refund"], "settlement_total": amount["total"], "discount_refund": 0,
             "currency": "CNY", "refund_fee": 0}
        )  # fmt: skip
        answer.update(
            {
                "channel": "ORIGINAL",
                "create_time": datetime.fromtimestamp(self.clock(), BEIJING).isoformat(timespec="seconds"),
                "status": resource["refund_status"],
                "funds_account": "AVAILABLE",
                "amount": amount,
            }
        )
        return 200, answer

    # -- bills ---------------------------------------------------------------------------------

    def trade_bill(self, day: date, *, sub_mchid: str | None = None, fund_flow: bool = False) -> bytes:
        """The ALL trade bill of `day` as the emulator serves it (ledger plus `bill_faults`), or
        with `fund_flow` the BASIC account's fund-flow bill."""
        orders = [_paid(order, self.mchid) for (sub, _), order in self.orders.items() if sub == sub_mchid]
        refunds = [_refunded(refund, self.orders[(sub, refund["out_trade_no"])], self.mchid)
                   for (sub, _), refund in self.refunds.items() if sub == sub_mchid]  # fmt: skip
        if fund_flow:
            return fund_flow_bill(day, orders, refunds)
        return trade_bill(day, orders, refunds, self.bill_faults)

    def _bill_answer(
        self, query: Mapping[str, str], *, fund_flow: bool = False
    ) -> tuple[int, dict[str, Any]]:
        try:
            day = date.fromisoformat(query.get("bill_date", ""))
        except ValueError:
            return 400, {"code": "INVALID_REQUEST", "message": "参数错误 请检查 bill_date"}
        if fund_flow and query.get("account_type", "BASIC") != "BASIC":
            return 400, {"code": "INVALID_REQUEST", "message": "参数错误 请检查 account_type"}
        if not fund_flow and (
            query.get("bill_type", "ALL") != "ALL" or (self.partner and not query.get("sub_mchid"))
        ):
            return 400, {"code": "INVALID_REQUEST", "message": "参数错误"}
        if day >= datetime.fromtimestamp(self.clock(), BEIJING).date():
            return 400, {"code": "STATEMENT_CREATING", "message": "账单生成中"}
        if day in self.no_bill:
            return 400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"}
        data = self.trade_bill(
            day, sub_mchid=query.get("sub_mchid") if self.partner else None, fund_flow=fund_flow
        )
        digest = hashlib.sha1(data + (b"\n" if self.bill_faults.wrong_hash else b"")).hexdigest()  # noqa: S324
        token = secrets.token_urlsafe(16)
        self._bill_files[token] = gzip.compress(data, mtime=0) if query.get("tar_type") == "GZIP" else data
        url = f"{self.base_url}{BILL_DOWNLOAD_PATH}?token={token}"
        return 200, {"hash_type": "SHA1", "hash_value": digest, "download_url": url}

    async def _bill_download(self, scope: Scope, send: SendAsgi, path_query: str) -> None:
        """The file behind a download_url: a signed GET, answered unsigned, once (WeChat Pay's
        URLs expire after about 30 s)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # Signed over the download_url's own path, which carries base_url's (`paynotify emulate` mounts it).
        signed = urlsplit(self.base_url).path.rstrip("/") + path_query
        refusal = self._authenticate(headers, scope["method"], signed, b"")
        token = dict(parse_qsl(path_query.partition("?")[2])).get("token", "")
        data = self._bill_files.pop(token, None) if refusal is None else None
        if data is None:
            status, answer = (
                (401, {"code": "SIGN_ERROR", "message": refusal})
                if refusal
                else (400, {"code": "INVALID_REQUEST", "message": "下载链接已过期"})
            )
            await self._reply(send, status, answer)
            return
        raw = [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": data})

    def _certificates(self) -> dict[str, Any]:
        data = []
        for certificate in self.platform_certificates:
            pem = certificate.certificate_pem or ""
            sealed = encrypt_resource(
                pem.encode("ascii"), self.apiv3_key.encode(), nonce=secrets.token_hex(6),
                associated_data="certificate", original_type="certificate",
            )  # fmt: skip
            sealed.pop("original_type")
            now = datetime.now(BEIJING)
            data.append(
                {
                    "serial_no": certificate.key_id,
                    "effective_time": (now - timedelta(days=1)).isoformat(timespec="seconds"),
                    "expire_time": (now + timedelta(days=5 * 365)).isoformat(timespec="seconds"),
                    "encrypt_certificate": sealed,
                }
            )
        return {"data": data}

    async def _reply(self, send: SendAsgi, status: int, answer: Mapping[str, Any]) -> None:
        body = _json(answer)
        headers: dict[str, str] = {"Content-Type": "application/json"}
        if not self.unsigned and status != 401:
            stamp = int(self.clock()) if self.answer_timestamp is None else self.answer_timestamp
            signed = testing.sign_v3(body, self.signing_key, timestamp=stamp)
            headers.update({k: v for k, v in signed.items() if k.lower().startswith("wechatpay-")})
        headers["Request-ID"] = secrets.token_hex(16)
        if self.tamper is not None:
            body = self.tamper(body)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode("ascii")))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _moment(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


def _paid(order: Mapping[str, Any], mchid: str) -> Paid:
    paid = order.get("trade_state") in ("SUCCESS", "REFUND")
    number = str(order["out_trade_no"])
    return Paid(
        order=number, total=int(order["amount"]["total"]),
        at=_moment(order.get("success_time")) if paid else None,
        transaction_id=str(order.get("transaction_id") or testing._transaction_id(mchid, number)),
        appid=str(order.get("appid") or order.get("sp_appid") or ""), mchid=mchid,
        sub_mchid=str(order.get("sub_mchid") or "0"),
        openid=str(order.get("payer", {}).get("openid") or order.get("payer", {}).get("sp_openid") or ""),
    )  # fmt: skip


def _refunded(refund: Mapping[str, Any], order: Mapping[str, Any], mchid: str) -> Refunded:
    done = refund.get("refund_status") == "SUCCESS"
    return Refunded(
        order=str(refund["out_trade_no"]), transaction_id=str(refund["transaction_id"]),
        out_refund_no=str(refund["out_refund_no"]), refund_id=str(refund["refund_id"]),
        refund=int(refund["amount"]["refund"]), at=_moment(refund.get("success_time")) if done else None,
        status=str(refund["refund_status"]), appid=str(order.get("appid") or order.get("sp_appid") or ""),
        mchid=mchid, sub_mchid=str(refund.get("sub_mchid") or "0"),
    )  # fmt: skip


def local_v3_emulator(settings: WeChatPayV3Settings, directory: Path) -> LocalEmulator | None:
    """The emulator of an account `paynotify init` wrote into `directory` (`paynotify emulate`):
    it signs with WeChat Pay's side of the account's public key (`PROVIDER_SIDE_V3_KEY`) and checks
    requests with the merchant's key. None for an account without the merchant key, in certificate
    mode or a service provider's (the emulator would need keys init does not write)."""
    path = directory / testing.PROVIDER_SIDE_V3_KEY
    merchant_key, serial = settings.merchant_key, settings.merchant_serial
    if merchant_key is None or serial is None or settings.service_provider or not path.is_file():
        return None
    if settings.public_key_id is None or settings.public_key is None or settings.mchid is None:
        return None
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        return None
    signing = testing.V3SigningKey(settings.public_key_id, private, settings.public_key)
    emulator = WeChatPayV3Emulator(
        mchid=settings.mchid, appid=settings.appid or testing.APPID,
        apiv3_key=settings.apiv3_key.get_secret_value(), signing_key=signing, merchant_key=merchant_key,
        merchant_serial=serial,
    )  # fmt: skip
    emulator.base_url = settings.base_url

    def pay(order_id: str, amount: Decimal, at: datetime) -> DemoRequest:
        emulator.pay(order_id, total=int(amount * 100))
        return replace(emulator.notification_request(order=order_id), label=f"TRANSACTION.SUCCESS {order_id}")

    def refund(order_id: str, refund_id: str, amount: Decimal, at: datetime) -> DemoRequest:
        emulator.refund(refund_id, order_id, refund=int(amount * 100))
        return replace(emulator.notification_request(refund=refund_id), label=f"REFUND.SUCCESS {refund_id}")

    return LocalEmulator(emulator, settings.base_url, pay, refund, resend=RESEND_SCHEDULE)
