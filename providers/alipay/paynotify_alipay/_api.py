"""Asking Alipay about an order or a refund (alipay.trade.query, alipay.trade.fastpay.refund.query).

The request is a form POST to the account's gateway (`base_url`) with Alipay's common parameters
(app_id, method, format=JSON, charset=utf-8, sign_type, timestamp in Beijing time, version=1.0,
biz_content; in certificate mode app_cert_sn and alipay_root_cert_sn), signed with the app's
private key over the sorted `k=v&...` of every parameter but `sign` (sign_type included).

The answer is JSON, `{"<method>_response": {...}, "sign": "...", "alipay_cert_sn": "..."}`. Its
signature covers the response object's value exactly as sent, so it is verified on that raw
substring (located by a JSON scanner, never re-serialised) with the account's Alipay keys and
configured hash before any field is read:

| answer                                                  | here                               |
|---------------------------------------------------------|------------------------------------|
| no sign, code 10000                                     | VerificationError                  |
| no sign, another code (the request itself refused)      | ProviderApiError, never believed   |
| a sign no configured key verifies; a key twice          | VerificationError                  |
| verified, code 10000                                    | a result, by the notification's rules |
| verified, 40004 ACQ.TRADE_NOT_EXIST                     | found=False                        |
| verified, 20000 / ACQ.SYSTEM_ERROR                      | ProviderUnavailable (ask later)    |
| verified, any other code                                | ProviderApiError with the sub_code |

A payment answer's trade_status gives the same kind, status and event_id a notification of that
state carries. A refund answer (refund_status REFUND_SUCCESS) is the refund of the same refund
request (out_request_no, the notification's out_biz_no) and so the same event as its notification.
Alipay's answer names neither app_id nor seller_id: it is about the order this account asked for,
under this account's app_id, so the result carries the account's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from paynotify import (
    BEIJING,
    Account,
    ApiRequest,
    ApiResponse,
    Bill,
    Download,
    InvalidContent,
    Kind,
    MalformedNotification,
    PaymentResult,
    ProviderApi,
    ProviderApiError,
    ProviderUnavailable,
    QueryAnswer,
    Send,
    Source,
    Status,
    VerificationError,
    make_event_id,
)
from paynotify_alipay._bills import AlipayBill
from paynotify_alipay._provider import PAYMENT_STATUSES, trade_event_parts
from paynotify_alipay._settings import AlipaySettings
from paynotify_alipay._shapes import problem
from paynotify_alipay._signature import sign, verify

__all__ = ["BILL_QUERY", "NO_BILL", "REFUND_QUERY", "TRADE_QUERY", "AlipayApi", "response_value"]

TRADE_QUERY = "alipay.trade.query"
BILL_QUERY = "alipay.data.dataservice.bill.downloadurl.query"
NO_BILL = "isp.bill_not_exist"
"""sub_code of "no bill for that day" (账单不存在): not published yet, or no such day."""
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
_RETRY_LATER = frozenset({"ACQ.SYSTEM_ERROR", "isp.unknow-error", "aop.ACQ.SYSTEM_ERROR"})
_NOT_FOUND = frozenset({"ACQ.TRADE_NOT_EXIST"})
_TIME = "%Y-%m-%d %H:%M:%S"
_FORM = {"content-type": "application/x-www-form-urlencoded;charset=utf-8"}

AccountA = Account[AlipaySettings]


def response_value(body: str, key: str) -> tuple[str, dict[str, Any]]:
    """The raw text of `key`'s value in a JSON answer (what Alipay signed) and the whole answer.

    The value is cut out by the JSON scanner at its own offsets, so the bytes are the ones sent;
    an answer with a key twice (at the top, or `sign`) is refused: which copy was signed is unclear.
    """

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [name for name, _ in pairs]
        if len(set(keys)) != len(keys):
            raise VerificationError("the answer names a field twice")
        return dict(pairs)

    try:
        whole = json.loads(body, object_pairs_hook=unique)
    except json.JSONDecodeError:
        raise MalformedNotification("the answer is not JSON") from None
    if not isinstance(whole, dict) or not isinstance(whole.get(key), dict):
        raise MalformedNotification(f"the answer has no {key} object")
    decoder = json.JSONDecoder()
    position = 0
    marker = json.dumps(key)
    while True:  # the top-level occurrence: the one whose value is the parsed object
        found = body.find(marker, position)
        if found < 0:
            raise MalformedNotification(f"the answer has no {key} object")
        colon = found + len(marker)
        while colon < len(body) and body[colon] in " \t\r\n":
            colon += 1
        if colon < len(body) and body[colon] == ":":
            start = colon + 1
            while start < len(body) and body[start] in " \t\r\n":
                start += 1
            try:
                value, end = decoder.raw_decode(body, start)
            except json.JSONDecodeError:
                value, end = None, start
            if value == whole[key]:
                return body[start:end], whole
        position = found + 1


class AlipayApi(ProviderApi[AlipaySettings]):
    """Alipay queries: `query_payment` by out_trade_no, `query_refund` by out_request_no."""

    def __init__(self, *, provider: str = "alipay", clock: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self.clock = clock

    def can_query(self, account: AccountA) -> bool:
        settings = account.settings
        if settings.app_key is None:
            return False
        # Certificate mode names both certificates by their SNs in every request.
        return not settings.certificate_mode or (
            settings.app_cert_sn is not None and settings.alipay_root_cert_sn is not None
        )

    def _require(self, account: AccountA) -> None:
        if self.can_query(account):
            return
        settings = account.settings
        missing = "app_private_key" if settings.app_key is None else "app_cert and alipay_root_cert"
        raise ProviderApiError(
            f"account {account.name!r} cannot query Alipay: set {missing}", account=account.name
        )

    def request(self, account: AccountA, method: str, biz: Mapping[str, Any]) -> ApiRequest:
        """The signed form POST of `method` with `biz` as biz_content."""
        settings = account.settings
        key = settings.app_key
        if key is None:  # pragma: no cover - every caller checked can_query
            raise ProviderApiError(f"account {account.name!r} has no app_private_key", account=account.name)
        params = {
            "app_id": settings.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": settings.sign_type,
            "timestamp": datetime.fromtimestamp(self.clock(), BEIJING).strftime(_TIME),
            "version": "1.0",
            "biz_content": json.dumps(dict(biz), ensure_ascii=False, separators=(",", ":")),
        }
        if settings.certificate_mode:
            params["app_cert_sn"] = settings.app_cert_sn or ""
            params["alipay_root_cert_sn"] = settings.alipay_root_cert_sn or ""
        content = "&".join(f"{name}={params[name]}" for name in sorted(params) if params[name])
        params["sign"] = sign(content.encode("utf-8"), key, settings.sign_type)
        return ApiRequest("POST", settings.base_url, _FORM, urlencode(params).encode("ascii"))

    async def _ask(
        self, send: Send, account: AccountA, method: str, biz: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The verified response object, or None when Alipay knows no such trade."""
        self._require(account)
        response = await send(self.request(account, method, biz))
        name = account.name
        if response.status >= 500 or response.status == 429:
            raise ProviderUnavailable(
                f"account {name!r}: Alipay answered HTTP {response.status}", account=name
            )
        if response.status != 200:
            raise ProviderApiError(f"account {name!r}: Alipay answered HTTP {response.status}", account=name)
        fields = self._verified(response, account, method.replace(".", "_") + "_response")
        code, sub_code = str(fields.get("code", "")), str(fields.get("sub_code", ""))
        if code == "10000":
            return fields
        if sub_code in _NOT_FOUND:
            return None
        reason = f"account {name!r}: Alipay answered {code} {sub_code or fields.get('msg', '')}".rstrip()
        if code == "20000" or sub_code in _RETRY_LATER:
            raise ProviderUnavailable(reason, account=name, code=sub_code or code)
        raise ProviderApiError(reason, account=name, code=sub_code or code)

    def can_fetch_bills(self, account: AccountA) -> bool:
        return self.can_query(account)

    async def fetch_bill(self, send: Send, download: Download, account: AccountA, day: date) -> Bill:
        """The trade bill of `day`: its short-lived URL asked for and verified like a query answer,
        then the ZIP behind it downloaded (unsigned: see `paynotify_alipay._bills`)."""
        biz = {"bill_type": "trade", "bill_date": day.isoformat()}
        try:
            fields = await self._ask(send, account, BILL_QUERY, biz)
        except ProviderApiError as exc:
            if exc.code != NO_BILL:
                raise
            raise ProviderApiError(
                f"account {account.name!r}: Alipay has no trade bill of {day} ({NO_BILL}): not published "
                "yet (a day's bill is ready from about 10:00 Beijing time the next day), or too old",
                account=account.name,
                code=NO_BILL,
            ) from None
        url = fields.get("bill_download_url") if fields is not None else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ProviderApiError(
                f"account {account.name!r}: Alipay's verified bill answer has no bill_download_url",
                account=account.name,
            )
        file = await download(ApiRequest("GET", url))
        return AlipayBill(day, file)

    def _verified(self, response: ApiResponse, account: AccountA, key: str) -> dict[str, Any]:
        name = account.name
        try:
            body = response.body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNotification("the answer is not UTF-8", account=name) from None
        try:
            raw, whole = response_value(body, key)
        except (MalformedNotification, VerificationError) as exc:
            exc.account = name
            raise
        fields: dict[str, Any] = whole[key]
        signature = whole.get("sign")
        if not isinstance(signature, str) or not signature:
            if str(fields.get("code", "")) != "10000":
                # Alipay leaves the refusal of a request it could not check unsigned: never believed.
                raise ProviderApiError(
                    f"account {name!r}: Alipay refused the request, unsigned: "
                    f"{fields.get('code', '')} {fields.get('sub_code') or fields.get('msg', '')}".rstrip(),
                    account=name,
                )
            raise VerificationError("the answer has no sign", account=name)
        settings = account.settings
        try:
            verify(raw.encode("utf-8"), signature, settings.public_keys, settings.sign_type)
        except VerificationError as exc:
            raise VerificationError(
                f"app_id {settings.app_id}: answer: {exc.message}", account=name
            ) from None
        return fields

    async def query_payment(
        self, send: Send, account: AccountA, order_id: str, *, at: datetime | None = None
    ) -> QueryAnswer:
        fields = await self._ask(send, account, TRADE_QUERY, {"out_trade_no": order_id})
        if fields is None:
            return QueryAnswer(result=None)
        _asked(account, "order", order_id, str(fields.get("out_trade_no", "")))
        status_text = str(fields.get("trade_status", ""))
        if status_text not in PAYMENT_STATUSES:
            raise ProviderApiError(
                f"account {account.name!r}: Alipay's answer has trade_status {status_text[:32]!r}",
                account=account.name,
            )
        # The notification's names, so its shapes and event rules apply unchanged.
        named = _strings(fields) | {
            "gmt_payment": str(fields.get("send_pay_date", "")),
            "buyer_id": str(fields.get("buyer_user_id", "")),
        }
        return QueryAnswer(result=self._result(account, named, Kind.PAYMENT), raw=fields)

    async def query_refund(
        self,
        send: Send,
        account: AccountA,
        refund_id: str,
        *,
        order_id: str | None = None,
        at: datetime | None = None,
    ) -> QueryAnswer:
        if order_id is None:
            raise ProviderApiError(
                f"account {account.name!r}: Alipay's refund query needs the order id with the refund id",
                account=account.name,
            )
        biz = {"out_trade_no": order_id, "out_request_no": refund_id, "query_options": ["gmt_refund_pay"]}
        fields = await self._ask(send, account, REFUND_QUERY, biz)
        # An unknown refund request answers 10000 without refund_status (Alipay's own rule).
        if fields is None or not fields.get("out_request_no"):
            return QueryAnswer(result=None, raw=fields or {})
        _asked(account, "refund", refund_id, str(fields.get("out_request_no", "")))
        _asked(account, "order", order_id, str(fields.get("out_trade_no", "")))
        named = _strings(fields) | {
            "out_biz_no": refund_id,
            "refund_fee": str(fields.get("refund_amount", "")),
            "gmt_refund": str(fields.get("gmt_refund_pay", "")),
        }
        if fields.get("refund_status") != "REFUND_SUCCESS":
            return QueryAnswer(result=self._result(account, named, Kind.REFUND, pending=True), raw=fields)
        return QueryAnswer(result=self._result(account, named, Kind.REFUND), raw=fields)

    def _result(
        self, account: AccountA, fields: dict[str, str], kind: Kind, *, pending: bool = False
    ) -> PaymentResult:
        settings = account.settings
        shaped = {name: value for name, value in fields.items() if value}
        # The shapes of a notification's fields; the required set of a return's (an answer has no
        # notify_id), out_trade_no above all.
        fault = problem(shaped, is_return=True)
        if fault is not None:
            raise InvalidContent(f"Alipay's verified answer: {fault}", account=account.name, raw=shaped)
        trade_no = shaped.get("trade_no")
        refund = kind is Kind.REFUND
        out_trade_no = shaped.get("out_trade_no", "")
        if refund:
            status = Status.PENDING if pending else Status.SUCCEEDED
            provider_status = shaped.get("refund_status") or "REFUND_PROCESSING"
            parts = trade_event_parts(trade_no, out_trade_no, fields["out_biz_no"], None)
        else:
            provider_status = shaped["trade_status"]
            status = PAYMENT_STATUSES[provider_status]
            parts = trade_event_parts(trade_no, out_trade_no, None, provider_status)
        try:
            return PaymentResult(
                provider=self.provider,
                account=account.name,
                kind=kind,
                status=status,
                provider_status=provider_status,
                order_id=shaped["out_trade_no"],
                transaction_id=trade_no,
                refund_id=fields["out_biz_no"] if refund else None,
                amount=_money(shaped.get("total_amount")),
                refund_amount=_money(shaped.get("refund_fee")) if refund else None,
                paid_at=_when(shaped.get("gmt_payment")),
                refunded_at=_when(shaped.get("gmt_refund")) if refund and not pending else None,
                payer_id=shaped.get("buyer_id") or shaped.get("buyer_open_id") or None,
                app_id=settings.app_id,
                merchant_id=settings.seller_id,
                source=Source.QUERY,
                event_id=make_event_id(account.name, kind, *parts),
                raw=shaped,
            )
        except (ValueError, KeyError) as exc:
            raise InvalidContent(
                f"Alipay's verified answer is out of shape: {exc}", account=account.name
            ) from None


def _strings(fields: Mapping[str, Any]) -> dict[str, str]:
    return {name: value for name, value in fields.items() if isinstance(value, str)}


def _money(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {text[:20]!r}") from None


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else _TIME
    return datetime.strptime(text, fmt).replace(tzinfo=BEIJING)


def _asked(account: AccountA, what: str, asked: str, answered: str) -> None:
    # The signature covers the answer, not the question: an answer about another order is not ours.
    if answered != asked:
        raise ProviderApiError(
            f"account {account.name!r}: Alipay answered about {what} {answered[:64]!r}, not {asked[:64]!r}",
            account=account.name,
        )
