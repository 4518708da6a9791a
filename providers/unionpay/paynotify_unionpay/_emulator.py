"""A local UnionPay gateway, as an ASGI app: transactions, signed query answers, pushed notifications.

    emulator = testing.UnionPayEmulator()
    notifier.add_account("shop", "unionpay", **emulator.account_settings())
    paid = emulator.pay("order20260101001", txn_amt="8888")   # a consume, answered 00
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator))

`POST /gateway/api/queryTrans.do` is answered as UnionPay does (PROTOCOLS.md, "Asking the
provider"): the request's signature is checked with the merchant's signing certificate (certId),
the transaction is found by merId + orderId + txnTime, and the answer (respCode 00 with the
transaction's fields and origRespCode; 34 when there is none) is a form signed with the throwaway
CFCA-like chain's leaf, signPubKeyCert included, exactly like a notification. A request that does
not verify gets an unsigned respCode 11 (验签失败).

`notification(...)` is the signed back-end notification of a transaction (the same fields the
query answers) and `push(...)` POSTs it once to a backUrl: dropped, duplicated, or after an
awaitable; `courier(...)` resends it on RESEND_SCHEDULE (unconfirmed) until HTTP 200.

The file transfer endpoint (`POST {base_url}/`, the account's `file_url`; txnType 76, txnSubType 01,
fileType 00, settleDate MMDD) answers, signed like a query, respCode 00 with `fileContent`: the
base64 of a deflated ZIP holding `INN<yymmdd>88ZM_<merId>`, the settled (respCode 00) transactions
of that day as ZM lines (`_emulator_bills`), with the discrepancies of `bill_faults`. A day not
over yet (Beijing time) or in `no_bill` answers respCode 98 (文件不存在): the emulator's choice,
UnionPay's own code for "no file" is not confirmed here.

Faults, for tests: `down` (HTTP 503), `stall` (an asyncio.Event awaited before answering),
`unsigned` (no signature), `tamper` (bytes -> bytes after signing), `answer_code` (respCode of
every answer, e.g. "04": the query timed out at UnionPay). `requests` lists the decoded requests.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from cryptography.x509.oid import NameOID

from paynotify import BEIJING, DemoRequest, LocalEmulator, MalformedNotification
from paynotify.testing import Clock, NotificationCourier, ResendSchedule, push_once
from paynotify_unionpay import testing
from paynotify_unionpay._api_signing import pfx_bytes
from paynotify_unionpay._emulator_bills import BillFaults, bill_zip
from paynotify_unionpay._form import decode_form
from paynotify_unionpay._settings import UnionPaySettings
from paynotify_unionpay._signature import sign_string, signed_message

__all__ = [
    "EMULATOR_BASE_URL",
    "BillFaults",
    "MerchantCertificate",
    "UnionPayEmulator",
    "generate_merchant_certificate",
    "local_emulator",
]

EMULATOR_BASE_URL = "http://unionpay.emulator"
RESEND_SCHEDULE = ResendSchedule(
    "unionpay", delays=(60, 120, 240, 300), acknowledged=lambda status, body: status == 200, confirmed=False
)
"""UnionPay resends until HTTP 200 (body ignored), reportedly 1, 2, 4 and 5 minutes apart (5 sends):
not in UnionPay's published docs (PROTOCOLS.md, "Reply"), so `confirmed` is False."""
_FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
_TIME = "%Y%m%d%H%M%S"
_QUERY_PATH = "/gateway/api/queryTrans.do"
_FILE_PATH = "/"

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
SendAsgi = Callable[[Mapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class MerchantCertificate:
    """The merchant's throwaway signing certificate, as UnionPay issues it: a .pfx with a password."""

    key: RSAPrivateKey
    certificate: x509.Certificate
    password: str

    @property
    def cert_id(self) -> str:
        return str(self.certificate.serial_number)

    @property
    def pfx(self) -> bytes:
        return pkcs12.serialize_key_and_certificates(
            b"acp_test_sign",
            self.key,
            self.certificate,
            None,
            BestAvailableEncryption(self.password.encode()),
        )


def generate_merchant_certificate(key: RSAPrivateKey | None = None) -> MerchantCertificate:
    """A fresh signing key and certificate for a merchant (a year's validity, an 11-digit serial)."""
    key = key or testing.generate_key()
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "paynotify testing merchant signing certificate")]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(10**10 + secrets.randbelow(9 * 10**10))
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return MerchantCertificate(key, certificate, secrets.token_urlsafe(12))


class UnionPayEmulator:
    """UnionPay's gateway for one merchant: its transactions, by (orderId, txnTime)."""

    def __init__(
        self,
        *,
        mer_id: str = testing.MER_ID,
        chain: testing.SigningChain | None = None,
        merchant: MerchantCertificate | None = None,
    ) -> None:
        self.mer_id = mer_id
        self.chain = chain or testing.generate_chain()
        self.merchant = merchant or generate_merchant_certificate()
        self.transactions: dict[tuple[str, str], dict[str, str]] = {}
        self.requests: list[dict[str, str]] = []
        self.down = False
        self.stall: asyncio.Event | None = None
        self.unsigned = False
        self.tamper: Callable[[bytes], bytes] | None = None
        self.answer_code: str | None = None
        self.base_url = EMULATOR_BASE_URL
        self.bill_faults = BillFaults()
        self.no_bill: set[date] = set()

    def account_settings(self) -> dict[str, Any]:
        """Settings of an account of this merchant, pointed at the emulator (trusting its chain)."""
        return {
            "mer_id": self.mer_id,
            **self.chain.account_settings(),
            "signing_pfx": base64.b64encode(self.merchant.pfx).decode("ascii"),
            "signing_pfx_password": self.merchant.password,
            "base_url": self.base_url,
            "file_url": self.base_url + _FILE_PATH,
        }

    # -- transactions --------------------------------------------------------------------------

    def _record(self, fields: dict[str, str | None]) -> dict[str, str]:
        kept = {k: v for k, v in fields.items() if v is not None}
        self.transactions[(kept["orderId"], kept["txnTime"])] = kept
        return kept

    def _fields(
        self, order_id: str, txn_type: str, txn_amt: str, resp_code: str, txn_time: datetime | None,
        orig_qry_id: str | None,
    ) -> dict[str, str | None]:  # fmt: skip
        at = (txn_time or datetime.now(BEIJING)).astimezone(BEIJING).replace(microsecond=0)
        qid = testing.query_id(self.mer_id, order_id)
        return {
            "accessType": "0",
            "bizType": "000201",
            "currencyCode": "156",
            "merId": self.mer_id,
            "orderId": order_id,
            "origQryId": orig_qry_id,
            "queryId": qid,
            "respCode": resp_code,
            "respMsg": "成功[0000000]" if resp_code == "00" else "交易失败",
            "settleAmt": txn_amt,
            "settleCurrencyCode": "156",
            "settleDate": f"{at:%m%d}",
            "traceNo": qid[-6:],
            "traceTime": f"{at:%m%d%H%M%S}",
            "txnAmt": txn_amt,
            "txnSubType": "01" if txn_type == "01" else "00",
            "txnTime": f"{at:{_TIME}}",
            "txnType": txn_type,
        }

    def pay(
        self, order_id: str, *, txn_amt: str = "8888", resp_code: str = "00", txn_time: datetime | None = None
    ) -> dict[str, str]:
        """A consume (txnType 01) with result `resp_code` (00 succeeded, 03/04/05 still unknown)."""
        return self._record(self._fields(order_id, "01", txn_amt, resp_code, txn_time, None))

    def refund(
        self, order_id: str, consume_order_id: str, *, txn_amt: str, txn_type: str = "04",
        resp_code: str = "00", txn_time: datetime | None = None,
    ) -> dict[str, str]:  # fmt: skip
        """A refund (04) or consume undo (31), `order_id` its own orderId, of a consume's."""
        orig = testing.query_id(self.mer_id, consume_order_id)
        return self._record(self._fields(order_id, txn_type, txn_amt, resp_code, txn_time, orig))

    @staticmethod
    def txn_time(transaction: Mapping[str, str]) -> datetime:
        """A transaction's txnTime as an aware datetime (what a query's `at` is)."""
        return datetime.strptime(transaction["txnTime"], _TIME).replace(tzinfo=BEIJING)

    # -- notifications -------------------------------------------------------------------------

    def notification(self, transaction: Mapping[str, str]) -> bytes:
        """The signed back-end notification of `transaction` (as `pay`/`refund` return it)."""
        t = transaction
        return testing.make_notify(
            self.chain, mer_id=self.mer_id, order_id=t["orderId"], txn_amt=t["txnAmt"], txn_type=t["txnType"],
            resp_code=t["respCode"], orig_qry_id=t.get("origQryId"), txn_time=self.txn_time(t),
        )  # fmt: skip

    def courier(
        self, client: httpx.AsyncClient, *, clock: Clock | None = None, timeout: float = 10.0
    ) -> NotificationCourier:
        """Sends notifications as UnionPay does: resent on RESEND_SCHEDULE until acknowledged."""
        return NotificationCourier(client, RESEND_SCHEDULE, clock=clock, timeout=timeout)

    def notification_request(self, transaction: Mapping[str, str]) -> DemoRequest:
        """The notification of `transaction`, as the request UnionPay POSTs to its backUrl."""
        return DemoRequest("notification", "notify", headers=_FORM, body=self.notification(transaction))

    async def push(
        self,
        client: httpx.AsyncClient,
        back_url: str,
        transaction: Mapping[str, str],
        *,
        copies: int = 1,
        drop: bool = False,
        before: Awaitable[object] | None = None,
    ) -> list[int]:
        """POST the notification once (no resends: `courier` resends), `copies` times (a duplicate: 2);
        `drop` sends nothing; `before` is awaited first (a delay). Returns the HTTP statuses received."""
        request = self.notification_request(transaction)
        return await push_once(client, back_url, request, copies=copies, drop=drop, before=before)

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
        if self.stall is not None:
            await self.stall.wait()
        if self.down:
            await self._reply(send, 503, b"Service Unavailable")
            return
        if scope["method"] == "POST" and scope["path"] == _FILE_PATH:
            await self._reply(send, 200, self._file_answer(body))
            return
        if scope["method"] != "POST" or scope["path"] != _QUERY_PATH:
            await self._reply(send, 404, b"Not Found")
            return
        await self._reply(send, 200, self._answer(body))

    def _answer(self, body: bytes) -> bytes:
        try:
            form = decode_form(body)
            fields = form.text()
        except MalformedNotification:
            return self._unsigned({"respCode": "10", "respMsg": "报文格式错误"})
        self.requests.append(fields)
        if not self._merchant_signed(form.raw, fields):
            return self._unsigned({"respCode": "11", "respMsg": "验签失败"})
        if fields.get("txnType") != "00" or fields.get("merId") != self.mer_id:
            return self._signed({"respCode": "12", "respMsg": "请求要素有误"}, fields)
        transaction = self.transactions.get((fields.get("orderId", ""), fields.get("txnTime", "")))
        if self.answer_code is not None:
            return self._signed({"respCode": self.answer_code, "respMsg": "交易状态未明"}, fields)
        if transaction is None:
            return self._signed({"respCode": "34", "respMsg": "查无此交易[2600000]"}, fields)
        answer = dict(transaction)
        answer.update(
            {"origRespCode": transaction["respCode"], "origRespMsg": transaction["respMsg"], "respCode": "00",
             "respMsg": "成功[0000000]"}
        )  # fmt: skip
        return self._signed(answer, fields)

    # -- bills ---------------------------------------------------------------------------------

    def bill_zip(self, day: date) -> tuple[str, bytes]:
        """The bill ZIP of settlement day `day` (its file name and bytes), faults included."""
        return bill_zip(self.mer_id, day, self.transactions.values(), self.bill_faults)

    def _file_answer(self, body: bytes) -> bytes:
        try:
            form = decode_form(body)
            fields = form.text()
        except MalformedNotification:
            return self._unsigned({"respCode": "10", "respMsg": "报文格式错误"})
        self.requests.append(fields)
        if not self._merchant_signed(form.raw, fields):
            return self._unsigned({"respCode": "11", "respMsg": "验签失败"})
        asked = {k: fields.get(k, "") for k in ("merId", "settleDate", "txnTime", "fileType")}
        answer = {"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "accessType": "0",
                  "txnType": "76", "txnSubType": "01", "bizType": "000000", **asked}  # fmt: skip
        wanted = (
            fields.get("txnType"),
            fields.get("txnSubType"),
            fields.get("fileType"),
            fields.get("merId"),
        )
        day = _settle_day(fields.get("settleDate", ""))
        if wanted != ("76", "01", "00", self.mer_id) or day is None:
            return self._signed_form(answer | {"respCode": "12", "respMsg": "请求要素有误"})
        if self.answer_code is not None:
            return self._signed_form(answer | {"respCode": self.answer_code, "respMsg": "emulated"})
        if day >= datetime.now(BEIJING).date() or day in self.no_bill:
            return self._signed_form(answer | {"respCode": "98", "respMsg": "文件不存在"})
        name, data = self.bill_zip(day)
        content = base64.b64encode(zlib.compress(data)).decode("ascii")
        return self._signed_form(answer | {"respCode": "00", "respMsg": "成功[0000000]", "fileName": name,
                                           "fileContent": content})  # fmt: skip

    def _signed_form(self, answer: Mapping[str, str]) -> bytes:
        fields = {**answer, "signPubKeyCert": self.chain.leaf_pem}
        if not self.unsigned:
            fields["signature"] = testing.sign_fields(fields, self.chain.leaf_key)
        body = testing.encode_form(dict(sorted(fields.items())))
        return self.tamper(body) if self.tamper is not None else body

    def _merchant_signed(self, raw: Mapping[bytes, bytes], fields: Mapping[str, str]) -> bool:
        if fields.get("certId") != self.merchant.cert_id or fields.get("signMethod") != "01":
            return False
        try:
            signature = base64.b64decode(raw.get(b"signature", b""), validate=True)
            self.merchant.key.public_key().verify(
                signature,
                signed_message(sign_string(dict(raw)), "5.1.0"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (ValueError, InvalidSignature):  # bad base64 or signature: "does not verify"
            return False
        return True

    def _base(self, request: Mapping[str, str]) -> dict[str, str]:
        return {
            "version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "accessType": "0",
            "merId": request.get("merId", ""), "orderId": request.get("orderId", ""),
            "txnTime": request.get("txnTime", ""), "txnType": "00", "txnSubType": "00", "bizType": "000000",
        }  # fmt: skip

    def _signed(self, answer: Mapping[str, str], request: Mapping[str, str]) -> bytes:
        fields = {**self._base(request), **answer, "signPubKeyCert": self.chain.leaf_pem}
        if not self.unsigned:
            fields["signature"] = testing.sign_fields(fields, self.chain.leaf_key)
        body = testing.encode_form(dict(sorted(fields.items())))
        return self.tamper(body) if self.tamper is not None else body

    def _unsigned(self, answer: Mapping[str, str]) -> bytes:
        return testing.encode_form({"version": "5.1.0", "encoding": "UTF-8", **answer})

    async def _reply(self, send: SendAsgi, status: int, body: bytes) -> None:
        headers = [
            (b"content-type", b"text/plain;charset=UTF-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _settle_day(mmdd: str) -> date | None:
    """The latest date with month and day `mmdd` that is not after today (Beijing)."""
    today = datetime.now(BEIJING).date()
    for year in (today.year, today.year - 1):
        try:
            day = date(year, int(mmdd[:2]), int(mmdd[2:]))
        except ValueError:
            return None
        if len(mmdd) == 4 and day <= today:
            return day
    return None


def local_emulator(settings: UnionPaySettings, directory: Path) -> LocalEmulator | None:
    """The emulator of an account `paynotify init` wrote into `directory` (`paynotify emulate`):
    it signs with the key of the account's trusted chain's leaf (`PROVIDER_SIDE_KEY`, the first
    `verify_certs`) and checks requests with the merchant's signing certificate. None for an
    account without a signing certificate, `base_url`, its certificates as text, or that file."""
    path = directory / testing.PROVIDER_SIDE_KEY
    certs = settings.verify_certs if isinstance(settings.verify_certs, list) else [settings.verify_certs]
    texts = [settings.root_cert, settings.middle_cert, certs[0] if certs else None]
    if settings.signing_pfx is None or settings.base_url is None or not path.is_file():
        return None
    if not all(isinstance(text, str) and "-----BEGIN" in text for text in texts):
        return None
    root, middle, leaf = (x509.load_pem_x509_certificate(str(text).encode("ascii")) for text in texts)
    leaf_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    password = settings.signing_pfx_password.get_secret_value() if settings.signing_pfx_password else ""
    key, certificate, _ = pkcs12.load_key_and_certificates(pfx_bytes(settings.signing_pfx), password.encode())
    if not isinstance(leaf_key, RSAPrivateKey) or not isinstance(key, RSAPrivateKey) or certificate is None:
        return None
    # Only the leaf signs: the root's and middle's keys are never needed (nor written by init).
    chain = testing.SigningChain(leaf_key, root, leaf_key, middle, leaf_key, leaf)
    emulator = UnionPayEmulator(
        mer_id=settings.mer_id, chain=chain, merchant=MerchantCertificate(key, certificate, password)
    )
    emulator.base_url = settings.base_url

    def pay(order_id: str, amount: Decimal, at: datetime) -> DemoRequest:
        transaction = emulator.pay(order_id, txn_amt=str(int(amount * 100)), txn_time=at)
        body = emulator.notification(transaction)
        return DemoRequest(f"consume {order_id}", "notify", headers=_FORM, body=body)

    def refund(order_id: str, refund_id: str, amount: Decimal, at: datetime) -> DemoRequest:
        if not any(t["orderId"] == order_id and t["txnType"] == "01" for t in emulator.transactions.values()):
            raise KeyError(order_id)
        transaction = emulator.refund(refund_id, order_id, txn_amt=str(int(amount * 100)), txn_time=at)
        body = emulator.notification(transaction)
        return DemoRequest(f"refund {refund_id} of {order_id}", "notify", headers=_FORM, body=body)

    return LocalEmulator(emulator, settings.base_url, pay, refund, resend=RESEND_SCHEDULE)
