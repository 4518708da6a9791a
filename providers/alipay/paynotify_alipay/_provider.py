"""Alipay async notifications (channel `notify`) and sync returns (channel `return`).

The form is decoded once, verified over the received bytes, and only then read. `raw` in the
result holds the verified fields exactly as decoded (including `sign`): `passback_params` stays
percent-encoded there, as Alipay signed it; `passback_params(result)` decodes it.

| channel | trade_status   | refund_fee / gmt_refund | kind / status       | provider_status   |
|---------|----------------|-------------------------|---------------------|-------------------|
| notify  | WAIT_BUYER_PAY | -                       | payment / pending   | WAIT_BUYER_PAY    |
| notify  | TRADE_SUCCESS  | absent                  | payment / succeeded | TRADE_SUCCESS     |
| notify  | TRADE_FINISHED | (not a refund)          | payment / succeeded | TRADE_FINISHED    |
| notify  | TRADE_CLOSED   | absent (timeout close)  | payment / closed    | TRADE_CLOSED      |
| notify  | TRADE_SUCCESS  | present (partial)       | refund / succeeded  | TRADE_SUCCESS     |
| notify  | TRADE_CLOSED   | present (full refund)   | refund / succeeded  | TRADE_CLOSED      |
| notify  | another value  | -                       | InvalidContent, never a result          |
| notify  | absent         | -                       | payment / pending   | notify_type value |
| return  | (not sent)     | -                       | payment / pending   | RETURN            |

A verified message of another notify_type (fund authorization's fund_auth_freeze, fund_auth_unfreeze,
fund_auth_operation_cancel; servicemarket_order_notify; ...) or a message service message
(msg_method, e.g. alipay.trade.refund.depositback.completed, no notify_type) is an `UnhandledEvent`
of that type: recorded `unhandled` with every field, acknowledged `success`, never refused.

Refunds: refund_id = out_biz_no (the merchant's refund request number), refund_amount =
refund_fee, which is the CUMULATIVE amount refunded on the trade so far, not this refund's amount;
refunded_at = gmt_refund. event_id = account + kind + trade_no + (a refund's request, a payment's
trade_status), where the refund request is out_biz_no, or gmt_refund|refund_fee when Alipay leaves
it out (a refund query names the same event by out_request_no); a notification
without trade_status adds its notify_id, so no two of them collapse into one event.
key_id names the configured key that verified the message: the certificate's SN in certificate
mode (alipay_public_cert), else the key's 8-hex id (alipay_public_key).
Verified fields are then held to Alipay's documented shapes (`_shapes`: ids, amounts, times,
trade_status; a paid state with total_amount): the V1 content does not delimit its values, so a
genuine signature also covers the same bytes split into other fields. A field out of shape raises
InvalidContent with the verified fields as `raw`, and the event_id when out_trade_no is there.
A return is never a payment result: it is pending with source `return`, whatever it carries; and
a verified message without notify_id/notify_type (a return replayed to notify_url) is refused
as NotANotification: counted and logged (sampled), never recorded.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import unquote_plus

from paynotify import (
    BEIJING,
    Account,
    DemoAccount,
    DemoRequest,
    InboundRequest,
    InvalidContent,
    Kind,
    LocalEmulator,
    MalformedNotification,
    NotANotification,
    NotificationError,
    PaymentResult,
    Provider,
    Reply,
    SampleNotification,
    Source,
    StarterAccount,
    Status,
    UnhandledEvent,
    VerificationError,
    beijing_time,
    make_event_id,
)
from paynotify_alipay._form import decode_form
from paynotify_alipay._settings import AlipaySettings
from paynotify_alipay._shapes import problem
from paynotify_alipay._signature import AlipayPublicKey, sign_content, verify

if TYPE_CHECKING:
    from paynotify_alipay._api import AlipayApi

__all__ = ["PAYMENT_STATUSES", "RETURN_STATUS", "AlipayProvider", "passback_params", "trade_event_parts"]

RETURN_STATUS = "RETURN"
"""provider_status of a sync return, which carries no trade_status and proves nothing."""

PAYMENT_STATUSES = {
    "WAIT_BUYER_PAY": Status.PENDING,
    "TRADE_SUCCESS": Status.SUCCEEDED,
    "TRADE_FINISHED": Status.SUCCEEDED,
    "TRADE_CLOSED": Status.CLOSED,
}
_REFUND_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_CLOSED"})
_ACK = Reply.text("success")
_NACK = Reply.text("fail")
_FORM_CONTENT_TYPE = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def passback_params(result: PaymentResult, encoding: str = "utf-8") -> str | None:
    """The merchant's `passback_params`, URL-decoded once (raw keeps it as Alipay signed it).

    Raises UnicodeDecodeError if the merchant encoded it in another charset than `encoding`.
    """
    value = result.raw.get("passback_params")
    return (
        unquote_plus(value, encoding=encoding, errors="strict") if isinstance(value, str) and value else None
    )


class AlipayProvider(Provider[AlipaySettings]):
    """Alipay (支付宝) notify_url and return_url (V1 rule), and open-platform messages (V2 rule)."""

    name = "alipay"
    settings_model = AlipaySettings
    channels: ClassVar[frozenset[str]] = frozenset({"notify", "return"})

    def __init__(self) -> None:
        self._api: AlipayApi | None = None

    def api(self) -> AlipayApi:
        """Order and refund queries (`_api`), signed with the app's private key."""
        if self._api is None:
            from paynotify_alipay._api import AlipayApi

            self._api = AlipayApi(provider=self.name)
        return self._api

    def parse(
        self, request: InboundRequest, account: Account[AlipaySettings]
    ) -> PaymentResult | UnhandledEvent:
        settings = account.settings
        is_return = request.channel == Source.RETURN.value
        data = request.query if is_return and request.method.upper() == "GET" else request.body
        try:
            form = decode_form(data)
        except MalformedNotification as exc:
            exc.account = account.name
            raise

        signature = form.fields.get("sign", "")
        if not signature:
            raise VerificationError("the notification has no sign", account=account.name)
        # Alipay signs trade notifications and returns under the V1 rule; open-platform messages
        # (any other notify_type, e.g. servicemarket_order_notify or fund_auth_freeze, and the
        # message service's msg_method messages, e.g. alipay.trade.refund.depositback.completed)
        # under V2, which also signs sign_type, or V1. The rule follows the message's type, the
        # key and hash the configuration; a trade notification is never tried under V2.
        notify_type = form.fields.get("notify_type", "")
        message_type = notify_type or form.fields.get("msg_method", "")
        is_trade = is_return or notify_type == _TRADE_NOTIFY or not message_type
        try:
            key = self._verify(form.raw, signature, settings, trade=is_trade)
        except VerificationError as exc:
            message = f"app_id {settings.app_id}: {exc.message}"
            claimed = form.fields.get("sign_type", "")
            if claimed and claimed != settings.sign_type:
                message += f" (message says sign_type={claimed[:8]!r}, account verifies {settings.sign_type})"
            raise VerificationError(message, account=account.name) from None
        if not is_trade:
            return _open_platform_message(self.name, account.name, message_type, form.fields, key.key_id)
        return _normalize(self.name, account.name, form.fields, is_return, key.key_id)

    @staticmethod
    def _verify(
        raw: dict[bytes, bytes], signature: str, settings: AlipaySettings, *, trade: bool
    ) -> AlipayPublicKey:
        if trade:
            return verify(sign_content(raw), signature, settings.public_keys, settings.sign_type)
        try:
            return verify(sign_content(raw, "V2"), signature, settings.public_keys, settings.sign_type)
        except VerificationError:
            return verify(sign_content(raw), signature, settings.public_keys, settings.sign_type)

    def ack(self) -> Reply:
        return _ACK

    def nack(self, error: NotificationError) -> Reply:
        # Alipay resends on anything but `success`; its own samples answer `fail` with a 200.
        return _NACK

    @classmethod
    def starter(cls, emulator: str | None = None) -> StarterAccount:
        """A throwaway account for `paynotify init`: a fresh key pair, the public half as the
        account's Alipay public key. With `emulator`, also the app's own key pair (its private half
        signs queries) and a `base_url` on the emulator."""
        from paynotify_alipay import testing

        key = testing.generate_key()
        account = "shop-alipay"
        settings = {"app_id": "2021000000000000", "alipay_public_key_file": "keys/alipay_public_key.pem"}
        files = {
            "keys/alipay_public_key.pem": testing.public_key_pem(key),
            testing.PROVIDER_SIDE_KEY: testing.private_key_pem(key),
        }
        if emulator is not None:
            settings |= {
                "app_private_key_file": "keys/alipay_app_private_key.pem",
                "base_url": f"{emulator.rstrip('/')}/{account}/gateway.do",
            }
            files["keys/alipay_app_private_key.pem"] = testing.private_key_pem(testing.generate_key())
        return StarterAccount(account, settings, files)

    def emulator(self, account: Account[AlipaySettings], directory: Path) -> LocalEmulator | None:
        """An `AlipayEmulator` for the account, signing with `keys/provider-side/alipay_private_key.pem`."""
        from paynotify_alipay import testing

        return testing.local_emulator(account.settings, directory)

    def sample_notification(
        self, account: Account[AlipaySettings], directory: Path, sample: SampleNotification
    ) -> DemoRequest:
        from paynotify_alipay._sample import sample_notification

        return sample_notification(account, directory, sample)

    @classmethod
    def demo(cls) -> DemoAccount:
        from paynotify_alipay import testing

        key = testing.generate_key()
        app_id = "2021000000000001"
        refunded = datetime.now(BEIJING)
        settings = {
            "app_id": app_id,
            "alipay_public_key": testing.public_key_pem(key),
            "seller_id": testing.SELLER_ID,
        }
        paid = testing.make_notify(key, app_id=app_id, out_trade_no="demo-1001", subject="测试商品 A+B 套餐")
        refund = testing.make_notify(
            key,
            app_id=app_id,
            out_trade_no="demo-1001",
            refund_fee="20.00",
            gmt_refund=f"{refunded:%Y-%m-%d %H:%M:%S}.{refunded.microsecond // 1000:03d}",
            out_biz_no="demo-1001-refund-1",
        )
        returned = testing.make_return(key, app_id=app_id, out_trade_no="demo-1001")
        forged = paid.replace(b"total_amount=88.88", b"total_amount=0.01")
        return DemoAccount(
            settings=settings,
            requests=[
                DemoRequest("TRADE_SUCCESS notify", "notify", "POST", _FORM_CONTENT_TYPE, body=paid),
                DemoRequest("partial refund notify", "notify", "POST", _FORM_CONTENT_TYPE, body=refund),
                DemoRequest("sync return", "return", "GET", query=returned),
            ],
            forged=DemoRequest(
                "forged notify (amount changed after signing)",
                "notify",
                "POST",
                _FORM_CONTENT_TYPE,
                body=forged,
            ),
        )


_TRADE_NOTIFY = "trade_status_sync"


def _open_platform_message(
    provider: str, account: str, message_type: str, fields: dict[str, str], key_id: str
) -> UnhandledEvent:
    """A verified message that is not a trade (recorded `unhandled`, acknowledged `success`, never a
    payment), typed by its notify_type (fund_auth_freeze, fund_auth_unfreeze,
    fund_auth_operation_cancel, servicemarket_order_notify, ...) or, for the message service, its
    msg_method (alipay.trade.refund.depositback.completed, ...)."""
    identity = fields.get("notify_id") or fields.get("biz_content") or "&".join(sorted(fields))
    return UnhandledEvent(
        provider=provider,
        account=account,
        event_type=message_type,
        event_id=make_event_id(account, "event", message_type, identity),
        key_id=key_id,
        raw=dict(fields),
    )


def _amount(fields: dict[str, str], name: str) -> Decimal | None:
    # The shape (digits, at most two decimals) was checked in `problem`.
    text = fields.get(name, "")
    return Decimal(text) if text else None


def _time(fields: dict[str, str], name: str) -> datetime | None:
    text = fields.get(name, "")
    if not text:
        return None
    # gmt_refund may carry milliseconds ("2015-04-28 15:45:57.320").
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    try:
        return beijing_time(text, fmt)
    except ValueError:
        raise MalformedNotification(f"{name} is not a 'yyyy-MM-dd HH:mm:ss' time: {text[:30]!r}") from None


def trade_event_parts(
    trade_no: str | None, out_trade_no: str, refund_request: str | None, trade_status: str | None
) -> list[str | None]:
    """The event_id parts after the account and kind: the trade, then the refund request (refunds)
    or the trade_status (payments). A refund is one event per refund request, whatever the trade's
    state after it: the refund query, which does not say that state, names the same event."""
    return [trade_no or f"out_trade_no:{out_trade_no}", refund_request, trade_status]


def _event_parts(fields: dict[str, str], is_return: bool) -> tuple[Kind, Status, str, list[str | None]]:
    """kind, status, provider_status and the event_id parts after the account, from the fields."""
    trade_no = fields.get("trade_no")
    trade_key = trade_no or f"out_trade_no:{fields.get('out_trade_no', '')}"
    trade_status = fields.get("trade_status", "")
    refund_fee, gmt_refund = fields.get("refund_fee", ""), fields.get("gmt_refund", "")
    if is_return:
        return Kind.PAYMENT, Status.PENDING, RETURN_STATUS, [trade_key, None, RETURN_STATUS]
    if trade_status in _REFUND_STATUSES and (refund_fee or gmt_refund):
        refund_request = fields.get("out_biz_no") or f"{gmt_refund}|{refund_fee}"
        parts = trade_event_parts(trade_no, fields.get("out_trade_no", ""), refund_request, None)
        return Kind.REFUND, Status.SUCCEEDED, trade_status, parts
    if trade_status:
        status = PAYMENT_STATUSES.get(trade_status, Status.PENDING)
        return Kind.PAYMENT, status, trade_status, [trade_key, None, trade_status]
    # Verified yet without a trade_status: keep it (pending) rather than lose it, one event per notify_id.
    notify_type = fields.get("notify_type", "")
    return (
        Kind.PAYMENT,
        Status.PENDING,
        notify_type,
        [trade_key, None, notify_type, fields.get("notify_id", "")],
    )


def _normalize(
    provider: str, account: str, fields: dict[str, str], is_return: bool, key_id: str
) -> PaymentResult:
    if not is_return and not (fields.get("notify_id") and fields.get("notify_type")):
        # Same key, same rule: a sync return (which the buyer's browser sees) would verify here too;
        # not recorded, since any buyer could post re-encoded copies of theirs.
        raise NotANotification(
            "verified, but not an async notification (no notify_id/notify_type; a sync return?)",
            account=account,
            raw=fields,
        )
    kind, status, provider_status, parts = _event_parts(fields, is_return)
    fault = problem(fields, is_return=is_return)
    if fault is None:
        try:
            amount = _amount(fields, "total_amount")
            paid_at = _time(fields, "gmt_payment")
            is_refund = kind is Kind.REFUND
            refund_amount = _amount(fields, "refund_fee") if is_refund else None
            refunded_at = _time(fields, "gmt_refund") if is_refund else None
        except MalformedNotification as exc:
            fault = exc.message
    if fault is not None:
        # Recorded with the verified fields; the event_id is the one a well-formed copy would have.
        raise InvalidContent(
            f"verified, but {fault}",
            account=account,
            raw=fields,
            event_id=make_event_id(account, kind, *parts) if fields.get("out_trade_no") else None,
        )

    return PaymentResult(
        provider=provider,
        account=account,
        kind=kind,
        status=status,
        provider_status=provider_status,
        order_id=fields["out_trade_no"],
        transaction_id=fields.get("trade_no") or None,
        refund_id=(fields.get("out_biz_no") or None) if is_refund else None,
        amount=amount,
        refund_amount=refund_amount,
        paid_at=paid_at,
        refunded_at=refunded_at,
        payer_id=fields.get("buyer_id") or fields.get("buyer_open_id") or None,
        app_id=fields.get("app_id") or None,
        merchant_id=fields.get("seller_id") or None,
        source=Source.RETURN if is_return else Source.NOTIFY,
        event_id=make_event_id(account, kind, *parts),
        key_id=key_id,
        raw=fields,  # validation copies it
    )
