"""WeChat Pay API v2 notifications (channel `notify`): payment results and encrypted refund results.

A body with `req_info` is a refund notification, any other a payment notification. Both must say
return_code SUCCESS: a FAIL carries no business fields and no signature, so it is refused as
malformed (never a payment). A payment notification is verified (`sign`, with the account's
sign_type) before any business field is read. A refund notification has no signature: it is
authentic if its appid / mch_id are the account's and its req_info decrypts under the account's
key with strict PKCS#7 padding into a `<root>` document (a `sign`, if one is ever present, must
verify too). Times are Beijing time; amounts arrive in fen and become yuan (Decimal, 2 places).

| notification | field                      | kind / status       | provider_status |
|--------------|----------------------------|---------------------|-----------------|
| payment      | result_code SUCCESS        | payment / succeeded | SUCCESS         |
| payment      | result_code FAIL           | payment / failed    | FAIL            |
| payment      | result_code, other value   | payment / pending   | the value       |
| refund       | refund_status SUCCESS      | refund / succeeded  | SUCCESS         |
| refund       | refund_status CHANGE       | refund / failed     | CHANGE          |
| refund       | refund_status REFUNDCLOSE  | refund / closed     | REFUNDCLOSE     |
| refund       | refund_status, other value | refund / pending    | the value       |
| either       | return_code not SUCCESS    | MalformedNotification, never a result |

Payment fields: order_id = out_trade_no, transaction_id, amount = total_fee / 100, currency =
fee_type (CNY when absent), paid_at = time_end (yyyyMMddHHmmss), payer_id = openid, or sub_openid
when a service provider's notification has no openid, app_id = appid, merchant_id = mch_id
(the service provider's ids in service-provider mode; sub_appid / sub_mch_id stay in raw).
transaction_id, total_fee and time_end are required when result_code is SUCCESS; err_code and
err_code_des of a FAIL stay in raw. raw = every received field, sign included, unknown ones too.

Refund fields: order_id = out_trade_no, transaction_id, refund_id = out_refund_no (the
merchant's refund request number), provider_refund_id = refund_id (WeChat's), amount =
total_fee / 100 (the order), refund_amount = refund_fee / 100 (this refund), refunded_at =
success_time (yyyy-MM-dd HH:mm:ss) when refund_status is SUCCESS, app_id / merchant_id = the
outer appid / mch_id. raw = the outer fields except req_info, updated with the decrypted fields
(the decrypted ones win a name clash: they are the authenticated ones). Of the outer fields only
appid and mch_id are checked; nonce_str and the rest are not protected by the protocol.

event_id = account + kind + (transaction_id or out_trade_no) + (out_refund_no for a refund) +
provider_status: the same for every retry of a notification, new for each refund of one order.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from paynotify import (
    Account,
    DemoAccount,
    DemoRequest,
    InboundRequest,
    Kind,
    MalformedNotification,
    NotificationError,
    PaymentResult,
    Provider,
    Reply,
    Status,
    VerificationError,
    beijing_time,
    make_event_id,
)
from paynotify_wechatpay._v2_refund_crypto import decrypt_req_info
from paynotify_wechatpay._v2_settings import WeChatPayV2Settings
from paynotify_wechatpay._v2_signature import verify
from paynotify_wechatpay._xml import parse_flat_xml

__all__ = ["WeChatPayV2Provider"]

_PAYMENT_STATUSES = {"SUCCESS": Status.SUCCEEDED, "FAIL": Status.FAILED}
_REFUND_STATUSES = {"SUCCESS": Status.SUCCEEDED, "CHANGE": Status.FAILED, "REFUNDCLOSE": Status.CLOSED}
_FEN = re.compile(r"[0-9]{1,18}")  # fen as a 64-bit integer; more digits would round in Decimal
_TIME_END = ("%Y%m%d%H%M%S", re.compile(r"[0-9]{14}"), "yyyyMMddHHmmss")
_SUCCESS_TIME = ("%Y-%m-%d %H:%M:%S", re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"),
                 "yyyy-MM-dd HH:mm:ss")  # fmt: skip
_REPLY = "<xml><return_code><![CDATA[{code}]]></return_code><return_msg><![CDATA[{msg}]]></return_msg></xml>"
_REASON_LENGTH = 120
_SHOWN_LENGTH = 64


def _shown(value: str) -> str:
    """A received (untrusted) value as it may appear in an error message: quoted and bounded."""
    return repr(value if len(value) <= _SHOWN_LENGTH else value[:_SHOWN_LENGTH] + "...")


def _required(fields: dict[str, str], name: str, what: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise MalformedNotification(f"{what} has no {name}")
    return value


def _yuan(fields: dict[str, str], name: str, what: str) -> Decimal:
    value = _required(fields, name, what)
    if not _FEN.fullmatch(value):
        raise MalformedNotification(
            f"{what} {name} is {_shown(value)}, not a whole number of fen (1-18 digits)"
        )
    return Decimal(value).scaleb(-2)


def _time(fields: dict[str, str], name: str, what: str, form: tuple[str, re.Pattern[str], str]) -> datetime:
    value = _required(fields, name, what)
    fmt, pattern, label = form
    try:
        if not pattern.fullmatch(value):
            raise ValueError(value)
        return beijing_time(value, fmt)
    except ValueError:
        raise MalformedNotification(f"{what} {name} is {_shown(value)}, not a {label} time") from None


def _check_return_code(fields: dict[str, str], what: str) -> None:
    return_code = fields.get("return_code")
    if return_code is None:
        raise MalformedNotification(f"{what} has no return_code")
    if return_code != "SUCCESS":
        message = fields.get("return_msg", "")
        raise MalformedNotification(
            f"{what} return_code {_shown(return_code)}: {_shown(message)} (never a payment or refund result)"
        )


_ACK = Reply(200, _REPLY.format(code="SUCCESS", msg="OK").encode(), "application/xml")


class WeChatPayV2Provider(Provider[WeChatPayV2Settings]):
    """WeChat Pay API v2: XML payment and refund notifications on the `notify` channel."""

    name: ClassVar[str] = "wechatpay-v2"
    settings_model = WeChatPayV2Settings
    channels: ClassVar[frozenset[str]] = frozenset({"notify"})

    def parse(self, request: InboundRequest, account: Account[WeChatPayV2Settings]) -> PaymentResult:
        fields = parse_flat_xml(request.body, "xml", what="notification")
        if "req_info" in fields:
            return self._refund(fields, account)
        return self._payment(fields, account)

    def _payment(self, fields: dict[str, str], account: Account[WeChatPayV2Settings]) -> PaymentResult:
        what = "payment notification"
        settings = account.settings
        _check_return_code(fields, what)
        verify(fields, settings.key_bytes, settings.sign_type)

        # Verified: from here on the fields are WeChat Pay's.
        provider_status = _required(fields, "result_code", what)
        status = _PAYMENT_STATUSES.get(provider_status, Status.PENDING)
        order_id = _required(fields, "out_trade_no", what)
        succeeded = status is Status.SUCCEEDED
        transaction_id = (
            _required(fields, "transaction_id", what) if succeeded else fields.get("transaction_id")
        )
        amount = _yuan(fields, "total_fee", what) if succeeded or fields.get("total_fee") else None
        paid_at = _time(fields, "time_end", what, _TIME_END) if succeeded or fields.get("time_end") else None
        return PaymentResult(
            provider=self.name,
            account=account.name,
            kind=Kind.PAYMENT,
            status=status,
            provider_status=provider_status,
            order_id=order_id,
            transaction_id=transaction_id or None,
            amount=amount,
            currency=fields.get("fee_type") or "CNY",
            paid_at=paid_at,
            payer_id=fields.get("openid") or fields.get("sub_openid") or None,
            app_id=fields.get("appid") or None,
            merchant_id=fields.get("mch_id") or None,
            event_id=make_event_id(
                account.name, Kind.PAYMENT, transaction_id or order_id, None, provider_status
            ),
            raw=fields,  # validation copies it
        )

    def _refund(self, outer: dict[str, str], account: Account[WeChatPayV2Settings]) -> PaymentResult:
        what = "refund notification"
        settings = account.settings
        _check_return_code(outer, what)
        if "sign" in outer:  # refund notifications are not signed; a sign that is there must hold
            verify(outer, settings.key_bytes, settings.sign_type)
        for name, expected in (("appid", settings.appid), ("mch_id", settings.mch_id)):
            received = _required(outer, name, what)
            if received != expected:
                raise VerificationError(
                    f"{what} is for {name} {_shown(received)}, this account is {name} {expected!r}; "
                    "its req_info is not this account's to decrypt"
                )
        plaintext = decrypt_req_info(_required(outer, "req_info", what), settings.refund_aes_key)
        try:
            inner = parse_flat_xml(plaintext, "root", what="decrypted req_info")
        except MalformedNotification as exc:
            # A wrong key passes the padding check about once in 256 and yields garbage: same cause.
            raise VerificationError(
                f"req_info does not decrypt under this account's API key ({exc.message})"
            ) from None

        # Decrypted with the account's key: from here on the fields are WeChat Pay's.
        what = "decrypted req_info"
        provider_status = _required(inner, "refund_status", what)
        status = _REFUND_STATUSES.get(provider_status, Status.PENDING)
        order_id = _required(inner, "out_trade_no", what)
        refund_id = _required(inner, "out_refund_no", what)
        transaction_id = inner.get("transaction_id") or None
        amount = _yuan(inner, "total_fee", what)
        refund_amount = _yuan(inner, "refund_fee", what)
        success_time = (
            _time(inner, "success_time", what, _SUCCESS_TIME) if inner.get("success_time") else None
        )
        raw = {name: value for name, value in outer.items() if name != "req_info"}
        raw.update(inner)
        return PaymentResult(
            provider=self.name,
            account=account.name,
            kind=Kind.REFUND,
            status=status,
            provider_status=provider_status,
            order_id=order_id,
            transaction_id=transaction_id,
            refund_id=refund_id,
            provider_refund_id=inner.get("refund_id") or None,
            amount=amount,
            refund_amount=refund_amount,
            refunded_at=success_time if status is Status.SUCCEEDED else None,
            app_id=outer["appid"],
            merchant_id=outer["mch_id"],
            event_id=make_event_id(
                account.name, Kind.REFUND, transaction_id or order_id, refund_id, provider_status
            ),
            raw=raw,
        )

    def ack(self) -> Reply:
        return _ACK

    def nack(self, error: NotificationError) -> Reply:
        """FAIL with a short reason, on HTTP 200: WeChat Pay v2 reads return_code, not the status.

        The reason is the error's message (never a secret, never the account name), made safe for
        CDATA: control characters become spaces, `]]>` is removed, and it is cut to 120 characters.
        """
        return Reply(200, _REPLY.format(code="FAIL", msg=_reason(error)).encode(), "application/xml")

    @classmethod
    def demo(cls) -> DemoAccount:
        """A throwaway HMAC-SHA256 account, a paid order and its refund; forged: a changed total_fee."""
        from paynotify_wechatpay import testing

        api_key = testing.generate_api_key()
        appid, mch_id = testing.APPID, testing.MCH_ID
        paid = testing.make_v2_payment_notify(
            api_key, appid=appid, mch_id=mch_id, out_trade_no="demo-order-1", sign_type="HMAC-SHA256"
        )
        refund = testing.make_v2_refund_notify(
            api_key, appid=appid, mch_id=mch_id, out_trade_no="demo-order-1",
            out_refund_no="demo-refund-1", total_fee=8888, refund_fee=1000,
        )  # fmt: skip
        forged = paid.replace(b"<total_fee>8888</total_fee>", b"<total_fee>1</total_fee>")
        if forged == paid:  # pragma: no cover - the helper's format changed
            raise RuntimeError("demo: could not forge the payment notification")
        headers = {"content-type": "text/xml"}
        return DemoAccount(
            settings={"appid": appid, "mch_id": mch_id, "api_key": api_key, "sign_type": "HMAC-SHA256"},
            requests=[
                DemoRequest("payment SUCCESS 88.88 CNY", "notify", headers=headers, body=paid),
                DemoRequest("refund SUCCESS 10.00 of 88.88", "notify", headers=headers, body=refund),
            ],
            forged=DemoRequest(
                "forged: total_fee changed after signing", "notify", headers=headers, body=forged
            ),
        )


def _reason(error: NotificationError) -> str:
    text = "".join(char if char.isprintable() else " " for char in error.message)
    while "]]>" in text:
        text = text.replace("]]>", "")
    text = " ".join(text.split())
    if len(text) > _REASON_LENGTH:
        text = text[: _REASON_LENGTH - 3] + "..."
    return text or type(error).__name__
