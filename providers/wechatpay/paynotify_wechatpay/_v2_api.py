"""Asking WeChat Pay API v2 about an order or a refund (查询订单 / 查询退款).

| what    | request (XML, POST)                                                              |
|---------|----------------------------------------------------------------------------------|
| payment | {base_url}/pay/orderquery: appid, mch_id, out_trade_no, nonce_str, sign_type, sign  |
| refund  | {base_url}/pay/refundquery: appid, mch_id, out_refund_no, nonce_str, sign_type, sign |

The request is signed with the account's API key and configured sign_type (the one notifications
are verified with); sign_type is sent, so WeChat Pay signs its answer the same way. The answer is
flat XML, read by the hardened parser (`_xml`), then:

| answer                                         | here                                          |
|------------------------------------------------|-----------------------------------------------|
| return_code not SUCCESS (no sign: the request itself refused) | ProviderApiError, never believed |
| return_code SUCCESS                            | the sign verified like a notification's, first |
| result_code FAIL, err_code ORDERNOTEXIST / REFUNDNOTEXIST | found=False                       |
| result_code FAIL, err_code SYSTEMERROR / FREQUENCY_LIMITED | ProviderUnavailable (ask later)  |
| result_code FAIL, any other err_code           | ProviderApiError with the err_code            |
| result_code SUCCESS                            | a result, read by the notification mapping    |

HTTP 5xx and 429 are ProviderUnavailable, another non-200 status ProviderApiError.

The sign covers the values, not the bytes: like a notification, an answer is verified on its
fields exactly as received (no trimming, no re-encoding), so an answer whose values were changed
in any way, a re-serialisation that trims or normalises among them, is refused; one that only
re-encodes the same values (CDATA or escaped text) carries the same signed content.
A v2 answer has no timestamp and does not echo the request's nonce_str, so a replayed genuine
answer about the same order cannot be told by its content; TLS to WeChat Pay is what prevents it.

Payment answers: trade_state decides the state, the rest goes through the notification's mapping
(`_v2_mapping.payment_result`), so the same state gives the same result and event_id:

| trade_state        | kind / status       | provider_status                              |
|--------------------|---------------------|----------------------------------------------|
| SUCCESS            | payment / succeeded | SUCCESS (as the notification result_code SUCCESS) |
| PAYERROR           | payment / failed    | FAIL (as the notification result_code FAIL)  |
| REFUND             | payment / succeeded | REFUND (paid, then a refund requested: as v3) |
| NOTPAY, USERPAYING | payment / pending   | the trade_state                              |
| CLOSED, REVOKED    | payment / closed    | the trade_state                              |
| any other          | ProviderApiError, never a result                   |

Refund answers list the order's refunds as `out_refund_no_$n`, `refund_status_$n`, ...; the one
asked for is picked, renamed to the refund notification's names (refund_fee_$n -> refund_fee,
refund_success_time_$n -> success_time, ...) beside the order's (out_trade_no, transaction_id,
total_fee), and read by the refund notification's mapping: refund_status SUCCESS, CHANGE,
REFUNDCLOSE as a notification's, PROCESSING (no notification has it) refund / pending.

The sign covers the answer but not the question: an answer about another order or refund than the
one asked, or for another appid / mch_id, is refused (ProviderApiError).

Bills: `fetch_bill` POSTs /pay/downloadbill (bill_date YYYYMMDD, bill_type ALL), signed the
same way; the answer is the bill's text, streamed to a file by the core's Download and read by
`_bills`, or an unsigned error XML (`_v2_bills`: "No Bill Exist" and the like, ProviderApiError).

Service-provider accounts: requests are the direct merchant's form (no sub_mch_id); not supported.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from datetime import date, datetime

from paynotify import (
    Account,
    ApiRequest,
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
)
from paynotify_wechatpay._bills import WeChatPayBill
from paynotify_wechatpay._v2_bills import DOWNLOAD_BILL_PATH, refuse_error_answer
from paynotify_wechatpay._v2_mapping import REFUND_STATUSES, known, payment_result, refund_result, shown
from paynotify_wechatpay._v2_refund_confirmation import confirm_v2_refund
from paynotify_wechatpay._v2_settings import WeChatPayV2Settings
from paynotify_wechatpay._v2_signature import sign, verify
from paynotify_wechatpay._xml import parse_flat_xml, to_xml

__all__ = [
    "ORDER_QUERY_PATH",
    "QUERY_REFUND_STATUSES",
    "QUERY_TRADE_STATES",
    "REFUND_QUERY_PATH",
    "WeChatPayV2Api",
]

ORDER_QUERY_PATH = "/pay/orderquery"
REFUND_QUERY_PATH = "/pay/refundquery"
QUERY_TRADE_STATES: dict[str, tuple[str, Status]] = {
    "SUCCESS": ("SUCCESS", Status.SUCCEEDED),
    "PAYERROR": ("FAIL", Status.FAILED),
    "REFUND": ("REFUND", Status.SUCCEEDED),
    "NOTPAY": ("NOTPAY", Status.PENDING),
    "USERPAYING": ("USERPAYING", Status.PENDING),
    "CLOSED": ("CLOSED", Status.CLOSED),
    "REVOKED": ("REVOKED", Status.CLOSED),
}
"""trade_state -> (provider_status, status): the state a notification of it would carry."""
QUERY_REFUND_STATUSES: dict[str, Status] = {**REFUND_STATUSES, "PROCESSING": Status.PENDING}
_RETRY_LATER = frozenset({"SYSTEMERROR", "FREQUENCY_LIMITED"})
_UNAVAILABLE_HTTP = frozenset({429})
_REFUND_NO = re.compile(r"out_refund_no_([0-9]{1,4})")
# One refund of a refund answer, under the refund notification's names (answer name -> notification's).
_ORDER_FIELDS = ("out_trade_no", "transaction_id", "total_fee", "settlement_total_fee")
_REFUND_FIELDS = {
    "out_refund_no": "out_refund_no",
    "refund_id": "refund_id",
    "refund_fee": "refund_fee",
    "settlement_refund_fee": "settlement_refund_fee",
    "refund_status": "refund_status",
    "refund_success_time": "success_time",
    "refund_recv_accout": "refund_recv_accout",
    "refund_account": "refund_account",
}

Account2 = Account[WeChatPayV2Settings]


def _nonce() -> str:
    return secrets.token_hex(16)


class WeChatPayV2Api(ProviderApi[WeChatPayV2Settings]):
    """WeChat Pay API v2 queries: `query_payment` by out_trade_no, `query_refund` by out_refund_no.

    `nonce` makes each request's nonce_str (random; tests may pin it).
    """

    def __init__(self, *, provider: str = "wechatpay-v2", nonce: Callable[[], str] = _nonce) -> None:
        self.provider = provider
        self.nonce = nonce

    def can_query(self, account: Account2) -> bool:
        # The API key every v2 account has signs the request and verifies the answer.
        return bool(account.settings.key_bytes)

    def request(self, account: Account2, path: str, fields: Mapping[str, str]) -> ApiRequest:
        """The signed XML request to `path` about `fields` (out_trade_no or out_refund_no)."""
        settings = account.settings
        body: dict[str, str] = {
            "appid": settings.appid,
            "mch_id": settings.mch_id,
            **fields,
            "nonce_str": self.nonce(),
            "sign_type": settings.sign_type,
        }
        body["sign"] = sign(body, settings.key_bytes, settings.sign_type)
        headers = {"content-type": "text/xml; charset=utf-8", "accept": "text/xml"}
        return ApiRequest("POST", settings.base_url.rstrip("/") + path, headers, to_xml(body).encode())

    async def _ask(
        self, send: Send, account: Account2, path: str, fields: Mapping[str, str], *, not_found: str
    ) -> tuple[dict[str, str], bool]:
        """The verified answer's fields, and whether it names the order (False: `not_found`)."""
        name, settings = account.name, account.settings
        what = f"{path.rsplit('/', 1)[-1]} answer"
        response = await send(self.request(account, path, fields))
        if response.status >= 500 or response.status in _UNAVAILABLE_HTTP:
            raise ProviderUnavailable(
                f"account {name!r}: WeChat Pay answered HTTP {response.status}", account=name
            )
        if response.status != 200:
            raise ProviderApiError(
                f"account {name!r}: WeChat Pay answered HTTP {response.status}", account=name
            )
        try:
            answer = parse_flat_xml(response.body, "xml", what=what)
        except MalformedNotification as exc:
            raise ProviderApiError(f"account {name!r}: {exc.message}", account=name) from None
        return_code = answer.get("return_code", "")
        if return_code != "SUCCESS":
            # The request itself refused (a bad sign, a malformed request): WeChat Pay signs no such
            # answer, so it is only ever an error, never a state.
            raise ProviderApiError(
                f"account {name!r}: WeChat Pay refused the request: return_code {shown(return_code)}, "
                f"return_msg {shown(answer.get('return_msg', ''))}",
                account=name,
            )
        try:
            verify(answer, settings.key_bytes, settings.sign_type, what=what)
        except VerificationError as exc:
            exc.account = exc.account or name
            raise
        # Verified: WeChat Pay's. The signature says nothing about which merchant asked.
        for field, expected in (("appid", settings.appid), ("mch_id", settings.mch_id)):
            received = answer.get(field)
            if received is not None and received != expected:
                raise ProviderApiError(
                    f"account {name!r}: WeChat Pay's answer is for {field} {shown(received)}, "
                    f"this account is {field} {expected!r}",
                    account=name,
                )
        result_code = answer.get("result_code", "")
        if result_code == "SUCCESS":
            return answer, True
        err_code = answer.get("err_code", "")
        if result_code == "FAIL" and err_code == not_found:
            return answer, False
        error = ProviderUnavailable if err_code in _RETRY_LATER else ProviderApiError
        raise error(
            f"account {name!r}: WeChat Pay answered result_code {shown(result_code)}, err_code "
            f"{shown(err_code)}: {shown(answer.get('err_code_des', ''))}",
            account=name,
            code=err_code or None,
        )

    async def query_payment(
        self, send: Send, account: Account2, order_id: str, *, at: datetime | None = None
    ) -> QueryAnswer:
        answer, found = await self._ask(
            send, account, ORDER_QUERY_PATH, {"out_trade_no": order_id}, not_found="ORDERNOTEXIST"
        )
        if not found:
            return QueryAnswer(result=None, raw=answer)
        trade_state = answer.get("trade_state", "")
        if trade_state not in QUERY_TRADE_STATES:
            raise ProviderApiError(
                f"account {account.name!r}: WeChat Pay's trade_state {shown(trade_state)} is not one of "
                + ", ".join(QUERY_TRADE_STATES),
                account=account.name,
            )
        provider_status, status = QUERY_TRADE_STATES[trade_state]
        result = self._mapped(
            account,
            lambda: payment_result(
                self.provider, account, answer, provider_status=provider_status, status=status,
                what="orderquery answer",
            ),
        )  # fmt: skip
        _asked(account, "order", order_id, result.order_id)
        return QueryAnswer(result=result.model_copy(update={"source": Source.QUERY}), raw=answer)

    def needs_confirmation(self, account: Account2, result: PaymentResult) -> bool:
        # A refund notification's req_info is encrypted, not authenticated (AES-ECB, no MAC).
        return result.kind is Kind.REFUND and account.settings.confirm_refunds

    async def confirm(self, send: Send, account: Account2, result: PaymentResult) -> str | None:
        """refundquery about the notified refund: None when it states the same refund, in the same
        state, with the same amounts (`confirm_v2_refund`); else why not."""
        assert result.refund_id is not None  # every v2 refund result has its out_refund_no
        answer = await self.query_refund(send, account, result.refund_id, order_id=result.order_id)
        confirmation = confirm_v2_refund(result, answer)
        return None if confirmation.confirmed else confirmation.reason

    async def query_refund(
        self,
        send: Send,
        account: Account2,
        refund_id: str,
        *,
        order_id: str | None = None,
        at: datetime | None = None,
    ) -> QueryAnswer:
        answer, found = await self._ask(
            send, account, REFUND_QUERY_PATH, {"out_refund_no": refund_id}, not_found="REFUNDNOTEXIST"
        )
        if not found:
            return QueryAnswer(result=None, raw=answer)
        fields = _one_refund(answer, refund_id, account.name)
        what = "refundquery answer"
        settings = account.settings

        def mapped() -> PaymentResult:
            provider_status = known(fields, "refund_status", what, QUERY_REFUND_STATUSES)
            return refund_result(
                self.provider, account, fields, raw=answer, provider_status=provider_status,
                status=QUERY_REFUND_STATUSES[provider_status], app_id=settings.appid,
                merchant_id=settings.mch_id, complete=False, what=what,
            )  # fmt: skip

        result = self._mapped(account, mapped)
        _asked(account, "refund", refund_id, result.refund_id)
        if order_id is not None:
            _asked(account, "order", order_id, result.order_id)
        return QueryAnswer(result=result.model_copy(update={"source": Source.QUERY}), raw=answer)

    def can_fetch_bills(self, account: Account2) -> bool:
        return self.can_query(account)

    async def fetch_bill(self, send: Send, download: Download, account: Account2, day: date) -> Bill:
        """The ALL trade bill of `day` (unsigned text: evidence only, see `_v2_bills`)."""
        fields = {"bill_date": f"{day:%Y%m%d}", "bill_type": "ALL"}
        file = await download(self.request(account, DOWNLOAD_BILL_PATH, fields))
        try:
            refuse_error_answer(file, account.name, day)
        except BaseException:
            file.close()
            raise
        return WeChatPayBill(day, file)

    @staticmethod
    def _mapped(account: Account2, mapping: Callable[[], PaymentResult]) -> PaymentResult:
        try:
            return mapping()
        except (InvalidContent, MalformedNotification) as exc:
            raise ProviderApiError(
                f"account {account.name!r}: WeChat Pay's verified answer is out of shape: {exc.message}",
                account=account.name,
            ) from None


def _one_refund(answer: Mapping[str, str], refund_id: str, account: str) -> dict[str, str]:
    """The refund `refund_id` of a refund answer, under the refund notification's names."""
    indexes = [
        match.group(1)
        for name, value in answer.items()
        if (match := _REFUND_NO.fullmatch(name)) is not None and value == refund_id
    ]
    if len(indexes) != 1:
        problem = "does not list" if not indexes else f"lists {len(indexes)} times"
        raise ProviderApiError(
            f"account {account!r}: WeChat Pay's refund answer {problem} refund {refund_id[:64]!r}",
            account=account,
        )
    n = indexes[0]
    fields = {name: answer[name] for name in _ORDER_FIELDS if name in answer}
    for name, renamed in _REFUND_FIELDS.items():
        if f"{name}_{n}" in answer:
            fields[renamed] = answer[f"{name}_{n}"]
    return fields


def _asked(account: Account2, what: str, asked: str, answered: str | None) -> None:
    # The signature covers the answer, not the question: a genuine answer about another order or
    # refund (replayed) must not stand for this one.
    if answered != asked:
        raise ProviderApiError(
            f"account {account.name!r}: asked about {what} {asked[:64]!r}, WeChat Pay's answer is about "
            f"{str(answered)[:64]!r}",
            account=account.name,
        )
