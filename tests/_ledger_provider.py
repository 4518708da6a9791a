"""A third-party-style provider with daily bills, for the reconciliation core's tests: its API
answers queries (HMAC-signed JSON, verified before a field is read) and publishes a CSV bill per
Beijing day, written from its emulator's own ledger with discrepancies the test injects.

Bill format (one header line, then one line per payment or refund):
    kind,order_id,transaction_id,refund_id,provider_refund_id,amount,status,time
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO, ClassVar
from urllib.parse import parse_qs

from pydantic import SecretStr

from paynotify import (
    BEIJING,
    Account,
    AccountSettings,
    ApiRequest,
    Bill,
    BillFormatError,
    BillLine,
    Download,
    InboundRequest,
    Kind,
    MalformedNotification,
    NotificationError,
    PaymentResult,
    Provider,
    ProviderApi,
    ProviderApiError,
    QueryAnswer,
    Reply,
    Send,
    Source,
    Status,
    VerificationError,
    make_event_id,
)

DAY = date(2026, 3, 14)
"""The reconciliation tests' bill day, pinned: "today in Beijing" changes at 16:00 UTC, mid-run."""
RECORDED_AT = datetime.combine(DAY, clock_time(14), BEIJING).timestamp()
"""When the shop records events in those tests (the stores' clock, pinned by `pin_store_clock`)."""
STORE_MODULES = ("memory", "sqlite", "postgresql", "redis")

HEADER = "kind,order_id,transaction_id,refund_id,provider_refund_id,amount,status,time"
_STATUS = {s.value: s for s in Status}


class PinnedClock:
    """A clock that starts at `at` and moves 1 ms each time it is read (recorded events keep an order)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        self.at += 0.001
        return self.at


def pin_store_clock(monkeypatch: Any, at: float = RECORDED_AT) -> PinnedClock:
    """Pin the clock every event store records with (`paynotify._stores.*.now`) to `at`."""
    clock = PinnedClock(at)
    for name in STORE_MODULES:
        monkeypatch.setattr(f"paynotify._stores.{name}.now", clock)
    return clock


class LedgerSettings(AccountSettings):
    base_url: str
    secret: SecretStr


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class LedgerBill(Bill):
    def lines(self) -> Iterator[BillLine]:
        assert self._file is not None
        text = io.TextIOWrapper(self._file, encoding="utf-8", newline="")
        for number, row in enumerate(csv.reader(text), start=1):
            if number == 1:
                if ",".join(row) != HEADER:
                    raise BillFormatError("not a ledger bill (its header)", line=1)
                continue
            if len(row) != 8:
                raise BillFormatError(f"{len(row)} fields, not 8", line=number)
            kind, order_id, txn, refund_id, provider_refund_id, amount, status, at = row
            try:
                value = Decimal(amount)
                moment = datetime.fromisoformat(at).replace(tzinfo=BEIJING)
                yield BillLine(
                    line=number, kind=Kind(kind), order_id=order_id, transaction_id=txn or None,
                    amount=value, status=_STATUS[status], provider_status=status, refund_id=refund_id or None,
                    provider_refund_id=provider_refund_id or None, at=moment,
                )  # fmt: skip
            except (InvalidOperation, ValueError, KeyError) as exc:
                raise BillFormatError(f"not a bill line ({type(exc).__name__})", line=number) from None


class LedgerApi(ProviderApi[LedgerSettings]):
    def can_query(self, account: Account[LedgerSettings]) -> bool:
        return True

    def can_fetch_bills(self, account: Account[LedgerSettings]) -> bool:
        return True

    async def _ask(self, send: Send, account: Account[LedgerSettings], path: str) -> dict[str, Any]:
        response = await send(ApiRequest("GET", account.settings.base_url + path))
        expected = sign(response.body, account.settings.secret.get_secret_value())
        if not hmac.compare_digest(response.headers.get("x-signature", ""), expected):
            raise VerificationError("the answer's X-Signature does not match", account=account.name)
        data: dict[str, Any] = json.loads(response.body)
        if response.status != 200:
            raise ProviderApiError(str(data.get("error")), account=account.name)
        return data

    def _result(self, account: Account[LedgerSettings], data: dict[str, Any]) -> PaymentResult | None:
        if not data.get("found"):
            return None
        kind, status = Kind(data["kind"]), Status(data["status"])
        refund = kind is Kind.REFUND
        moment = datetime.fromisoformat(data["time"]).replace(tzinfo=BEIJING)
        return PaymentResult(
            provider="test-ledger", account=account.name, kind=kind, status=status,
            provider_status=data["status"], order_id=data["order_id"], transaction_id=data["transaction_id"],
            amount=Decimal(data["order_amount"]), refund_amount=Decimal(data["amount"]) if refund else None,
            refund_id=data.get("refund_id"), provider_refund_id=data.get("provider_refund_id"),
            paid_at=None if refund else moment, refunded_at=moment if refund else None, source=Source.QUERY,
            event_id=make_event_id(account.name, kind, data["transaction_id"], data.get("refund_id"),
                                   data["status"]),
        )  # fmt: skip

    async def query_payment(
        self, send: Send, account: Account[LedgerSettings], order_id: str, *, at: datetime | None = None
    ) -> QueryAnswer:
        data = await self._ask(send, account, f"/query?order={order_id}")
        return QueryAnswer(result=self._result(account, data), raw=data)

    async def query_refund(
        self,
        send: Send,
        account: Account[LedgerSettings],
        refund_id: str,
        *,
        order_id: str | None = None,
        at: datetime | None = None,
    ) -> QueryAnswer:
        data = await self._ask(send, account, f"/refund?refund={refund_id}")
        return QueryAnswer(result=self._result(account, data), raw=data)

    async def fetch_bill(
        self, send: Send, download: Download, account: Account[LedgerSettings], day: date
    ) -> Bill:
        data = await self._ask(send, account, f"/bill?day={day.isoformat()}")
        file: BinaryIO = await download(ApiRequest("GET", data["url"]))
        digest = hashlib.sha256(file.read()).hexdigest()
        file.seek(0)
        if digest != data["sha256"]:
            file.close()
            raise VerificationError("the bill's hash is not the signed answer's", account=account.name)
        return LedgerBill(day, file)


class LedgerProvider(Provider[LedgerSettings]):
    name = "test-ledger"
    settings_model = LedgerSettings
    channels: ClassVar[frozenset[str]] = frozenset({"notify"})
    _api = LedgerApi()

    def parse(self, request: InboundRequest, account: Account[LedgerSettings]) -> PaymentResult:
        raise MalformedNotification("the ledger provider sends no notifications")

    def ack(self) -> Reply:
        return Reply.text("OK")

    def nack(self, error: NotificationError) -> Reply:
        return Reply.text("NO", 400)

    def api(self) -> LedgerApi:
        return self._api


@dataclass
class LedgerEmulator:
    """The provider's side: its ledger, its query answers and the bills it writes from them."""

    day: date = DAY
    """The day its payments are made (the pinned DAY: the shop records them on it too)."""
    secret: str = "ledger-secret"
    host: str = "ledger.emulator"
    payments: dict[str, dict[str, str]] = field(default_factory=dict)
    refunds: dict[str, dict[str, str]] = field(default_factory=dict)
    extra_lines: list[str] = field(default_factory=list)
    """Lines the bill carries beyond the ledger (a malformed one, say)."""
    hidden: set[str] = field(default_factory=set)
    """Order or refund ids the bill leaves out (while the ledger and queries keep them)."""
    bill_amounts: dict[str, str] = field(default_factory=dict)
    """Order or refund id -> the amount the bill states instead of the ledger's."""
    bill_statuses: dict[str, str] = field(default_factory=dict)
    body_delay: float = 0.0
    padding: int = 0
    requests: list[str] = field(default_factory=list)

    def account_settings(self, base_url: str | None = None) -> dict[str, str]:
        return {"base_url": base_url or f"http://{self.host}", "secret": self.secret}

    def pay(self, order_id: str, amount: str, at: str | None = None) -> str:
        at = at or f"{self.day} 12:00:00"
        txn = f"T{len(self.payments) + 1:06d}"
        self.payments[order_id] = {"transaction_id": txn, "amount": amount, "status": "succeeded", "time": at}
        return txn

    def refund(self, order_id: str, refund_id: str, amount: str, at: str | None = None) -> None:
        at = at or f"{self.day} 15:00:00"
        self.refunds[refund_id] = {"order_id": order_id, "amount": amount, "status": "succeeded", "time": at,
                                   "provider_refund_id": f"R{len(self.refunds) + 1:06d}"}  # fmt: skip

    def bill(self, day: str) -> bytes:
        rows = [HEADER]
        for order_id, p in self.payments.items():
            if p["time"].startswith(day) and order_id not in self.hidden:
                amount = self.bill_amounts.get(order_id, p["amount"])
                status = self.bill_statuses.get(order_id, p["status"])
                rows.append(f"payment,{order_id},{p['transaction_id']},,,{amount},{status},{p['time']}")
        for refund_id, r in self.refunds.items():
            if r["time"].startswith(day) and refund_id not in self.hidden:
                txn = self.payments[r["order_id"]]["transaction_id"]
                amount = self.bill_amounts.get(refund_id, r["amount"])
                rows.append(f"refund,{r['order_id']},{txn},{refund_id},{r['provider_refund_id']},{amount},"
                            f"{r['status']},{r['time']}")  # fmt: skip
        rows += self.extra_lines
        return ("\n".join(rows) + "\n").encode()

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        if path == "/query":
            p = self.payments.get(query.get("order", ""))
            data: dict[str, Any] = {"found": False}
            if p is not None:
                data = {"found": True, "kind": "payment", "order_id": query["order"],
                        "order_amount": p["amount"], "amount": p["amount"],
                        "transaction_id": p["transaction_id"], "status": p["status"],
                        "time": p["time"]}  # fmt: skip
            return 200, json.dumps(data).encode()
        if path == "/refund":
            r = self.refunds.get(query.get("refund", ""))
            data = {"found": False}
            if r is not None:
                p = self.payments[r["order_id"]]
                data = {"found": True, "kind": "refund", "order_id": r["order_id"],
                        "order_amount": p["amount"], "amount": r["amount"],
                        "transaction_id": p["transaction_id"], "status": r["status"],
                        "time": r["time"], "refund_id": query["refund"],
                        "provider_refund_id": r["provider_refund_id"]}  # fmt: skip
            return 200, json.dumps(data).encode()
        if path == "/bill":
            day = query.get("day", "")
            body = self.bill(day)
            url = f"http://{self.host}/file/{day}?token=sekrit-download-token"
            return 200, json.dumps({"url": url, "sha256": hashlib.sha256(body).hexdigest()}).encode()
        return 404, json.dumps({"error": f"no {path}"}).encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        path = scope["path"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        self.requests.append(path)
        if path.startswith("/file/"):
            body = self.bill(path.removeprefix("/file/")) + b"#" * self.padding
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/csv")]})  # fmt: skip
            for start in range(0, len(body), 1024):
                if self.body_delay:
                    await asyncio.sleep(self.body_delay)
                await send(
                    {"type": "http.response.body", "body": body[start : start + 1024], "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
            return
        status, body = self.answer(path, query)
        headers = [(b"content-type", b"application/json"), (b"x-signature", sign(body, self.secret).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
