"""Asking UnionPay about a transaction: 交易状态查询, `POST {base_url}/gateway/api/queryTrans.do`.

Request (a form, UTF-8): version 5.1.0, encoding UTF-8, signMethod 01, txnType 00, txnSubType 00,
bizType 000000, accessType 0, merId, orderId and txnTime of the transaction asked about (merId +
orderId + txnTime name one transaction, so the original time is required: `at`), certId of the
merchant's signing certificate, and `signature` by its private key with the notification rule
(hex SHA-256 of the sorted sign string, RSA SHA-256).

Answer: a form signed by UnionPay exactly like a notification; it is verified the same way (the
provider's own check: signPubKeyCert through the CFCA chain, then the signature over the exact
bytes) before a field is read. Then, as UnionPay's demo reads it:

| respCode        | means                                  | here                                    |
|-----------------|----------------------------------------|-----------------------------------------|
| 00              | the query succeeded; origRespCode is the transaction's result | a result |
| 34              | no such transaction (查无此交易)          | found=False                             |
| 03, 04, 05      | the query itself timed out at UnionPay | ProviderUnavailable (ask again later)   |
| anything else   | the query failed                       | ProviderApiError with the respCode      |

The answer describes the transaction asked about (its txnType, queryId, txnAmt, txnTime) with its
result in origRespCode. So it is read by the notification mapping (`_mapping.to_result`) with
respCode = origRespCode: origRespCode 00 succeeded, 03/04/05 pending, as a notification's respCode,
and the same event_id as the notification of that state. A refund's event_id names the consume
(origQryId); an answer for a refund without origQryId cannot have it and is refused
(ProviderApiError) rather than delivered under another id. `result.raw` is the answer as received.

An error answer without a signature (UnionPay may not sign a refusal of a malformed request) is a
ProviderApiError: it is never believed, and a "not found" is accepted only when signed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from paynotify import (
    BEIJING,
    Account,
    ApiRequest,
    Bill,
    Download,
    Kind,
    MalformedNotification,
    PaymentResult,
    ProviderApi,
    ProviderApiError,
    ProviderUnavailable,
    QueryAnswer,
    Send,
    Source,
)
from paynotify_unionpay._answer import SHOWN, signed_request, verified_answer
from paynotify_unionpay._mapping import TXN_TYPES, to_result
from paynotify_unionpay._settings import UnionPaySettings

if TYPE_CHECKING:
    from paynotify_unionpay._provider import UnionPayProvider

__all__ = ["NOT_FOUND", "QUERY_PATH", "UnionPayApi", "query_fields"]

QUERY_PATH = "/gateway/api/queryTrans.do"
NOT_FOUND = "34"
"""respCode of "no such transaction" (查无此交易)."""
_TIMED_OUT = frozenset({"03", "04", "05"})
_ASKED = {Kind.PAYMENT: "01", Kind.REFUND: "04"}

AccountU = Account[UnionPaySettings]


def query_fields(mer_id: str, order_id: str, txn_time: str, cert_id: str) -> dict[str, str]:
    """The fields of a queryTrans.do request, before its signature."""
    return {
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "txnType": "00",
        "txnSubType": "00",
        "bizType": "000000",
        "accessType": "0",
        "merId": mer_id,
        "orderId": order_id,
        "txnTime": txn_time,
        "certId": cert_id,
    }


class UnionPayApi(ProviderApi[UnionPaySettings]):
    """UnionPay's 交易状态查询 for payments (consumes) and refunds (退货, 消费撤销) alike: both are
    transactions named by their own orderId and txnTime."""

    def __init__(self, provider: UnionPayProvider) -> None:
        self.provider = provider

    def can_query(self, account: AccountU) -> bool:
        return account.settings.signing is not None

    def can_fetch_bills(self, account: AccountU) -> bool:
        return self.can_query(account)

    async def fetch_bill(self, send: Send, download: Download, account: AccountU, day: date) -> Bill:
        """`day`'s bill (settleDate): the ZIP comes inside the signed answer, so `download` is unused.
        See `paynotify_unionpay._file_transfer` and `_bills` for what is supported."""
        from paynotify_unionpay._file_transfer import fetch_bill

        return await fetch_bill(self.provider, send, account, day, datetime.now(BEIJING))

    async def query_payment(
        self, send: Send, account: AccountU, order_id: str, *, at: datetime | None = None
    ) -> QueryAnswer:
        return await self._query(send, account, order_id, at, Kind.PAYMENT)

    async def query_refund(
        self,
        send: Send,
        account: AccountU,
        refund_id: str,
        *,
        order_id: str | None = None,
        at: datetime | None = None,
    ) -> QueryAnswer:
        """`refund_id` is the orderId of the refund (or consume undo) request, `at` its txnTime."""
        return await self._query(send, account, refund_id, at, Kind.REFUND)

    def _request(self, account: AccountU, order_id: str, at: datetime | None) -> ApiRequest:
        settings = account.settings
        signing = settings.signing
        if signing is None:
            raise ProviderApiError(
                f"account {account.name!r} cannot query UnionPay: set signing_pfx and signing_pfx_password",
                account=account.name,
            )
        if at is None or at.tzinfo is None:
            raise ProviderApiError(
                f"account {account.name!r}: a UnionPay query needs the transaction's txnTime "
                "(at=, an aware datetime): merId, orderId and txnTime name one transaction",
                account=account.name,
            )
        fields = query_fields(
            settings.mer_id, order_id, f"{at.astimezone(BEIJING):%Y%m%d%H%M%S}", signing.cert_id
        )
        return signed_request(settings.api_base_url.rstrip("/") + QUERY_PATH, fields, signing)

    async def _query(
        self, send: Send, account: AccountU, order_id: str, at: datetime | None, kind: Kind
    ) -> QueryAnswer:
        request = self._request(account, order_id, at)
        response = await send(request)
        name = account.name
        fields, certificate = verified_answer(self.provider, account.settings, response, name, "the query")
        asked = (order_id, f"{at.astimezone(BEIJING):%Y%m%d%H%M%S}" if at is not None else "")
        return self._answer(account, fields, certificate.serial, kind, asked)

    def _answer(
        self, account: AccountU, fields: dict[str, str], key_id: str, kind: Kind, asked: tuple[str, str]
    ) -> QueryAnswer:
        name = account.name
        code = fields.get("respCode", "")
        message = fields.get("respMsg", "")[:SHOWN]
        if code == NOT_FOUND:
            return QueryAnswer(result=None, raw=fields)
        if code in _TIMED_OUT:
            raise ProviderUnavailable(
                f"account {name!r}: UnionPay's query timed out (respCode {code}: {message})",
                account=name,
                code=code,
            )
        if code != "00":
            raise ProviderApiError(
                f"account {name!r}: UnionPay refused the query (respCode {code[:SHOWN]!r}: {message})",
                account=name,
                code=code[:SHOWN],
            )
        answered = (fields.get("orderId", ""), fields.get("txnTime", ""))
        if answered != asked:
            # The signature covers the answer, not the question: another transaction's genuine
            # answer must not stand for this one.
            raise ProviderApiError(
                f"account {name!r}: asked about orderId {asked[0][:SHOWN]!r} at {asked[1]}, UnionPay's "
                f"answer is about {answered[0][:SHOWN]!r} at {answered[1][:20]!r}",
                account=name,
            )
        original = fields.get("origRespCode")
        if not original:
            raise ProviderApiError(f"account {name!r}: UnionPay's answer (respCode 00) has no origRespCode")
        read = dict(fields, respCode=original)
        if read.get("txnType") not in TXN_TYPES:
            read["txnType"] = _ASKED[kind]
        try:
            result = to_result(self.provider.name, name, read, Source.QUERY, key_id)
        except MalformedNotification as exc:
            raise ProviderApiError(
                f"account {name!r}: UnionPay's verified answer: {exc.message}", account=name
            ) from None
        if not isinstance(result, PaymentResult):  # pragma: no cover - txnType is one of TXN_TYPES
            raise ProviderApiError(f"account {name!r}: UnionPay's answer is not a payment or refund")
        return QueryAnswer(result=result.model_copy(update={"raw": fields}), raw=fields)
