"""Asking WeChat Pay API v3 about an order or a refund (主动查询), and downloading platform certificates.

| what                  | request                                                                       |
|-----------------------|-------------------------------------------------------------------------------|
| payment, merchant     | GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={mchid}            |
| payment, partner      | GET /v3/pay/partner/transactions/out-trade-no/{out_trade_no}?sp_mchid=&sub_mchid= |
| refund, merchant      | GET /v3/refund/domestic/refunds/{out_refund_no}                               |
| refund, partner       | GET /v3/refund/domestic/refunds/{out_refund_no}?sub_mchid={sub_mchid}         |
| platform certificates | GET /v3/certificates                                                          |
| trade bill            | GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL[&sub_mchid=]       |
| fund-flow bill        | GET /v3/bill/fundflowbill?bill_date=YYYY-MM-DD&account_type=BASIC            |

A bill's answer (`{hash_type: SHA1, hash_value, download_url}`, verified like any answer) names
the file; its download is a signed GET whose body is not signed, so its SHA1 is checked against
the signed hash_value before a line is read (`_v3_bills`).

Each request is signed with the merchant's API private key (`_v3_api_auth`). Each answer is
verified through its Wechatpay-* headers exactly like a notification, on its exact bytes, inside
the replay window, before a field is read; the "not found" answers (404 ORDER_NOT_EXIST,
RESOURCE_NOT_EXISTS) too, since they decide that nothing is delivered.

A payment answer is the same JSON as a payment notification's decrypted resource, so it goes
through the same mapping (`_v3_mapping.to_result`): the same state gives the same `PaymentResult`
and event_id, with `source="query"`. A refund answer differs from a refund notification's resource
in two names only: its state is `status` (the notification's `refund_status`), and it carries no
mchid (the merchant asked for its own refund). Both are filled in, from the account the request was
signed for, before the same mapping reads it.

The signature covers the answer but not the question: an answer about another order than the
one asked (a genuine one, replayed) is refused, ProviderApiError.

Errors: an answer that does not verify, VerificationError; 429 and 5xx, ProviderUnavailable;
any other error answer, ProviderApiError with WeChat Pay's `code`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

from paynotify import (
    Account,
    ApiResponse,
    Bill,
    Download,
    InvalidContent,
    Kind,
    MalformedNotification,
    ProviderApi,
    ProviderApiError,
    ProviderUnavailable,
    QueryAnswer,
    Send,
    Source,
    VerificationError,
)
from paynotify_wechatpay._bills import WeChatPayBill
from paynotify_wechatpay._fund_flow import FundFlowBill
from paynotify_wechatpay._json import loads
from paynotify_wechatpay._v3_api_auth import signed_request, verify_answer
from paynotify_wechatpay._v3_bills import (
    BILL_ERRORS,
    FUND_FLOW_BILL_PATH,
    TRADE_BILL_PATH,
    bill_answer,
    check_sha1,
    download_target,
)
from paynotify_wechatpay._v3_certificates import (
    CERTIFICATES_PATH,
    REFRESH_INTERVAL,
    CertificateRefresher,
    read_certificates,
)
from paynotify_wechatpay._v3_envelope import Envelope
from paynotify_wechatpay._v3_keys import V3Key
from paynotify_wechatpay._v3_mapping import to_result
from paynotify_wechatpay._v3_settings import WeChatPayV3Settings

__all__ = ["NOT_FOUND_CODES", "WeChatPayV3Api"]

NOT_FOUND_CODES = frozenset({"ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS"})
"""The 404 codes that mean "no such order / refund (yet)": the answer is `found=False`."""
_UNAVAILABLE = frozenset({429})
# The query answers read no envelope: raw is the answer's own fields.
_NO_ENVELOPE = Envelope("", "", {}, {})
_SHOWN = 80

Account3 = Account[WeChatPayV3Settings]


def _segment(value: str) -> str:
    """A path segment exactly as it is sent and signed: everything but unreserved characters escaped."""
    return quote(value, safe="")


class WeChatPayV3Api(ProviderApi[WeChatPayV3Settings]):
    """WeChat Pay API v3 queries: `query_payment` by out_trade_no, `query_refund` by out_refund_no.

    `clock` is the unix time requests are signed at and answers' replay window is checked against
    (the provider's clock, so tests pin both at once).
    """

    def __init__(self, *, provider: str = "wechatpay-v3", clock: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self.clock = clock
        self.gzip_bills = False
        """Ask for bills with tar_type=GZIP (smaller downloads; the SHA1 is of the inflated text)."""

    def can_query(self, account: Account3) -> bool:
        settings = account.settings
        if settings.merchant_key is None:
            return False
        # A partner queries one sub-merchant's orders: without sub_mchid there is no such query.
        return not settings.service_provider or settings.sub_mchid is not None

    def _require(self, account: Account3) -> None:
        if not self.can_query(account):
            missing = (
                "merchant_private_key and merchant_serial"
                if account.settings.merchant_key is None
                else "sub_mchid (a service provider queries one sub-merchant's orders)"
            )
            raise ProviderApiError(
                f"account {account.name!r} cannot query WeChat Pay: set {missing}", account=account.name
            )

    async def _get(self, send: Send, account: Account3, path_query: str) -> ApiResponse:
        settings = account.settings
        key, serial = settings.merchant_key, settings.merchant_serial
        if key is None or serial is None:  # pragma: no cover - every caller checked can_query
            raise ProviderApiError(f"account {account.name!r} has no merchant key", account=account.name)
        request = signed_request(
            key, base_url=settings.base_url, mchid=settings.api_mchid, serial_no=serial,
            path_query=path_query, now=self.clock(),
        )  # fmt: skip
        response = await send(request)
        if response.status >= 500 or response.status in _UNAVAILABLE:
            raise ProviderUnavailable(
                f"account {account.name!r}: WeChat Pay answered HTTP {response.status}{_code(response)}",
                account=account.name,
                code=_error_code(response),
            )
        return response

    def _verified(self, response: ApiResponse, account: Account3) -> tuple[V3Key, dict[str, Any]]:
        """The key that signed the answer and its JSON object; refused before reading if unsigned."""
        settings = account.settings
        try:
            key = verify_answer(
                response, settings.keyring, now=self.clock(), tolerance=settings.timestamp_tolerance
            )
        except VerificationError as exc:
            exc.account = exc.account or account.name
            raise
        try:
            value = loads(response.body.decode("utf-8"), "answer")
        except (UnicodeDecodeError, MalformedNotification):
            raise ProviderApiError(
                f"account {account.name!r}: WeChat Pay's answer (HTTP {response.status}) is not JSON",
                account=account.name,
            ) from None
        if not isinstance(value, dict):
            raise ProviderApiError(
                f"account {account.name!r}: WeChat Pay's answer is not a JSON object", account=account.name
            )
        return key, value

    def _answer(
        self,
        response: ApiResponse,
        account: Account3,
        kind: Kind,
        asked: str,
        adapt: Callable[[dict[str, Any]], None],
    ) -> QueryAnswer:
        if response.status not in (200, 404):
            raise ProviderApiError(
                f"account {account.name!r}: WeChat Pay answered HTTP {response.status}{_code(response)}",
                account=account.name,
                code=_error_code(response),
            )
        key, fields = self._verified(response, account)
        if response.status == 404:
            code = fields.get("code")
            if code in NOT_FOUND_CODES:
                return QueryAnswer(result=None, raw=fields)
            raise ProviderApiError(
                f"account {account.name!r}: WeChat Pay answered 404 {str(code)[:_SHOWN]!r}",
                account=account.name,
                code=str(code),
            )
        resource = dict(fields)
        adapt(resource)
        try:
            result = to_result(
                kind, account, _NO_ENVELOPE, resource, provider=self.provider, key_id=key.key_id
            )
        except InvalidContent as exc:
            raise ProviderApiError(
                f"account {account.name!r}: WeChat Pay's verified answer is out of shape: {exc.message}",
                account=account.name,
            ) from None
        except MalformedNotification as exc:  # e.g. another merchant's order (a VerificationError is not one)
            raise ProviderApiError(f"account {account.name!r}: {exc.message}", account=account.name) from None
        # The signature covers the answer, not the question: a genuine answer about another order
        # (replayed inside the window) must not stand for this one.
        answered = result.order_id if kind is Kind.PAYMENT else result.refund_id
        if answered != asked:
            raise ProviderApiError(
                f"account {account.name!r}: asked about {asked[:_SHOWN]!r}, WeChat Pay's answer is about "
                f"{str(answered)[:_SHOWN]!r}",
                account=account.name,
            )
        return QueryAnswer(result=result.model_copy(update={"source": Source.QUERY}), raw=fields)

    async def query_payment(
        self, send: Send, account: Account3, order_id: str, *, at: datetime | None = None
    ) -> QueryAnswer:
        self._require(account)
        settings = account.settings
        if settings.service_provider:
            path = f"/v3/pay/partner/transactions/out-trade-no/{_segment(order_id)}"
            query = {"sp_mchid": settings.sp_mchid, "sub_mchid": settings.sub_mchid}
        else:
            path = f"/v3/pay/transactions/out-trade-no/{_segment(order_id)}"
            query = {"mchid": settings.mchid}
        response = await self._get(send, account, f"{path}?{urlencode(query)}")
        return self._answer(response, account, Kind.PAYMENT, order_id, lambda resource: None)

    async def query_refund(
        self,
        send: Send,
        account: Account3,
        refund_id: str,
        *,
        order_id: str | None = None,
        at: datetime | None = None,
    ) -> QueryAnswer:
        self._require(account)
        settings = account.settings
        path = f"/v3/refund/domestic/refunds/{_segment(refund_id)}"
        if settings.service_provider:
            path += "?" + urlencode({"sub_mchid": settings.sub_mchid})
        response = await self._get(send, account, path)

        def adapt(resource: dict[str, Any]) -> None:
            # The refund answer's names -> the refund notification's (module docstring).
            if "refund_status" not in resource and "status" in resource:
                resource["refund_status"] = resource["status"]
            ids: Mapping[str, str | None] = (
                {"sp_mchid": settings.sp_mchid, "sub_mchid": settings.sub_mchid}
                if settings.service_provider
                else {"mchid": settings.mchid}
            )
            for name, value in ids.items():
                resource.setdefault(name, value)

        return self._answer(response, account, Kind.REFUND, refund_id, adapt)

    # -- bills --------------------------------------------------------------------------------

    def can_fetch_bills(self, account: Account3) -> bool:
        return self.can_query(account)

    async def fetch_bill(self, send: Send, download: Download, account: Account3, day: date) -> Bill:
        """The ALL trade bill of `day`: its answer verified, its file downloaded with a signed GET
        and checked against the answer's signed SHA1 before a line is read."""
        query = {"bill_date": day.isoformat(), "bill_type": "ALL"}
        if account.settings.service_provider:
            query["sub_mchid"] = account.settings.sub_mchid or ""
        if self.gzip_bills:
            query["tar_type"] = "GZIP"
        file = await self.bill_file(send, download, account, f"{TRADE_BILL_PATH}?{urlencode(query)}", day)
        return WeChatPayBill(day, file)

    async def fetch_fund_flow_bill(
        self, send: Send, download: Download, account: Account3, day: date, *, account_type: str = "BASIC"
    ) -> FundFlowBill:
        """The fund-flow bill (资金账单) of `day` and `account_type` (BASIC, OPERATION, FEES), fetched
        and SHA1-checked like the trade bill; its `entries()` are read strictly (`_fund_flow`)."""
        query = {"bill_date": day.isoformat(), "account_type": account_type}
        if self.gzip_bills:
            query["tar_type"] = "GZIP"
        path = f"{FUND_FLOW_BILL_PATH}?{urlencode(query)}"
        return FundFlowBill(day, await self.bill_file(send, download, account, path, day))

    async def bill_file(
        self, send: Send, download: Download, account: Account3, path_query: str, day: date
    ) -> BinaryIO:
        """The file a bill answer (trade or fund-flow) names, downloaded and its SHA1 checked."""
        self._require(account)
        name = account.name
        response = await self._get(send, account, path_query)
        if response.status not in (200, 400, 403, 404):
            raise ProviderApiError(
                f"account {name!r}: WeChat Pay answered HTTP {response.status}{_code(response)}",
                account=name, code=_error_code(response),
            )  # fmt: skip
        _, fields = self._verified(response, account)
        if response.status != 200:
            code = str(fields.get("code", ""))[:_SHOWN]
            why = BILL_ERRORS.get(code, str(fields.get("message", ""))[:_SHOWN])
            raise ProviderApiError(f"account {name!r}: WeChat Pay gives no bill of {day}: {code} ({why})",
                                   account=name, code=code)  # fmt: skip
        hash_value, url = bill_answer(fields, name)
        settings = account.settings
        key, serial = settings.merchant_key, settings.merchant_serial
        assert key is not None  # _require checked
        assert serial is not None
        base, path = download_target(url)
        request = signed_request(key, base_url=base, mchid=settings.api_mchid, serial_no=serial,
                                 path_query=path, now=self.clock())  # fmt: skip
        file = await download(request)
        try:
            check_sha1(file, hash_value, name)
        except BaseException:
            file.close()
            raise
        return file

    # -- platform certificates ------------------------------------------------------------------

    async def download_certificates(self, send: Send, account: Account3) -> list[V3Key]:
        """The platform certificates `/v3/certificates` lists, decrypted and verified (not adopted)."""
        if account.settings.merchant_key is None:
            raise ProviderApiError(
                f"account {account.name!r} cannot download platform certificates: set "
                "merchant_private_key and merchant_serial",
                account=account.name,
            )
        response = await self._get(send, account, CERTIFICATES_PATH)
        return read_certificates(response, account.settings, now=self.clock(), account=account.name)

    async def watch_certificates(
        self, send: Send, account: Callable[[], Account3], *, interval: float | None = None
    ) -> CertificateRefresher | None:
        """For an account in certificate mode with its merchant key: download and adopt its
        platform certificates now, and again whenever a notification names an unknown serial
        (single-flight, at most once per `interval`, a minute by default). None for any other
        account (public-key mode needs no download). `account` returns the account as it is now;
        after an `update_account`, call the refresher's `watch()` again."""
        if not account().settings.downloads_certificates:
            return None
        refresher = CertificateRefresher(
            self.download_certificates,
            send,
            account,
            interval=REFRESH_INTERVAL if interval is None else interval,
        )
        refresher.watch()
        await refresher.refresh()
        return refresher

    async def upkeep(self, send: Send, account: Callable[[], Account3]) -> CertificateRefresher | None:
        # The Notifier keeps a certificate-mode account's platform certificates current.
        return await self.watch_certificates(send, account)


def _error_code(response: ApiResponse) -> str | None:
    """WeChat Pay's error `code`, read from an answer that is not believed (for the message only)."""
    try:
        value = loads(response.body.decode("utf-8"), "error")
    except (UnicodeDecodeError, MalformedNotification):
        return None
    code = value.get("code") if isinstance(value, dict) else None
    return code[:_SHOWN] if isinstance(code, str) else None


def _code(response: ApiResponse) -> str:
    code = _error_code(response)
    return f" {code!r}" if code else ""
