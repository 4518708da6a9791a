"""WeChat Pay API v2 notifications (channel `notify`): payment results and encrypted refund results.

A body with `req_info` is a refund notification, any other a payment notification. Both must say
return_code SUCCESS: a FAIL carries no business fields and no signature, so it is refused as
malformed (never a payment). A payment notification is verified (`sign`, with the account's
sign_type) before any business field is read. A refund notification has no signature and is NOT
authenticated: req_info is AES-256-ECB without a MAC, so blocks of two genuine refunds of the
merchant can be spliced into a third that decrypts cleanly. It is refused unless its appid /
mch_id are the account's, req_info decrypts under the account's key with strict PKCS#7 padding
into exactly one `<root>` document holding every field WeChat Pay always sends, once, in shape,
with amounts that agree (refund_fee <= total_fee, settlement_refund_fee <= refund_fee,
settlement_total_fee <= total_fee); a `sign`, if one is ever present, must verify too. That
catches clumsy splices, not all: so refunds are confirmed with WeChat Pay's refund query before
delivery (`WeChatPayV2Api.needs_confirmation`, on by default; docs/providers/wechatpay-v2.md).
Verified or decrypted fields out of their documented shapes
(`_shapes`, fen as digits, known result_code / refund_status) raise InvalidContent with the
fields as `raw`. Times are Beijing time; amounts arrive in fen and become yuan (Decimal, 2 places).

| notification | field                      | kind / status       | provider_status |
|--------------|----------------------------|---------------------|-----------------|
| payment      | result_code SUCCESS        | payment / succeeded | SUCCESS         |
| payment      | result_code FAIL           | payment / failed    | FAIL            |
| payment      | result_code, other value   | InvalidContent, never a result       |
| refund       | refund_status SUCCESS      | refund / succeeded  | SUCCESS         |
| refund       | refund_status CHANGE       | refund / failed     | CHANGE          |
| refund       | refund_status REFUNDCLOSE  | refund / closed     | REFUNDCLOSE     |
| refund       | refund_status, other value | InvalidContent, never a result       |
| either       | return_code not SUCCESS    | MalformedNotification, never a result |
| other        | verified, no out_trade_no and no transaction_id | UnhandledEvent (below)  |

A verified notification that names no order (no out_trade_no, no transaction_id) is not a payment:
it is an `UnhandledEvent`, recorded `unhandled` and acknowledged, typed PAPAY.CONTRACT.ADD /
PAPAY.CONTRACT.DELETE for a 委托代扣 contract signed or ended (contract_id, change_type), else
UNRECOGNIZED; `raw` holds every field. Its return_code may be absent (the contract notification
documents none); a payment without one is InvalidContent.

Payment fields: order_id = out_trade_no, transaction_id, amount = total_fee / 100, currency =
fee_type (CNY when absent), paid_at = time_end (yyyyMMddHHmmss), payer_id = openid, or sub_openid
when a service provider's notification has no openid, app_id = appid, merchant_id = mch_id
(the service provider's ids in service-provider mode; sub_appid / sub_mch_id stay in raw).
transaction_id, total_fee and time_end are required when result_code is SUCCESS; cash_fee,
settlement_total_fee and coupon_fee must be fen when present; err_code and
err_code_des of a FAIL stay in raw. raw = every received field, sign included, unknown ones too.

Refund fields: order_id = out_trade_no, transaction_id, refund_id = out_refund_no (the
merchant's refund request number), provider_refund_id = refund_id (WeChat's), amount =
total_fee / 100 (the order), refund_amount = refund_fee / 100 (this refund), refunded_at =
success_time (yyyy-MM-dd HH:mm:ss) when refund_status is SUCCESS, app_id / merchant_id = the
outer appid / mch_id. raw = the outer fields except req_info, updated with the decrypted fields
(the decrypted ones win a name clash: they came out of the encryption). Of the outer fields only
appid and mch_id are checked; nonce_str and the rest are not protected by the protocol.

event_id = account + kind + (transaction_id or out_trade_no) + (out_refund_no for a refund) +
provider_status: the same for every retry of a notification, new for each refund of one order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from paynotify import (
    Account,
    DemoAccount,
    DemoRequest,
    InboundRequest,
    Kind,
    LocalEmulator,
    MalformedNotification,
    NotificationError,
    PaymentResult,
    Provider,
    Reply,
    SampleNotification,
    StarterAccount,
    UnhandledEvent,
    VerificationError,
    make_event_id,
)
from paynotify_wechatpay._v2_api import WeChatPayV2Api
from paynotify_wechatpay._v2_mapping import (
    PAYMENT_STATUSES,
    REFUND_STATUSES,
    invalid,
    known,
    payment_result,
    refund_result,
    required,
    shown,
)
from paynotify_wechatpay._v2_refund_crypto import decrypt_req_info
from paynotify_wechatpay._v2_settings import WeChatPayV2Settings
from paynotify_wechatpay._v2_signature import verify
from paynotify_wechatpay._xml import parse_flat_xml

__all__ = ["WeChatPayV2Provider"]

_REPLY = "<xml><return_code><![CDATA[{code}]]></return_code><return_msg><![CDATA[{msg}]]></return_msg></xml>"
_REASON_LENGTH = 120


def _check_return_code(fields: dict[str, str], what: str) -> None:
    return_code = fields.get("return_code")
    if return_code is None:
        raise MalformedNotification(f"{what} has no return_code")
    if return_code != "SUCCESS":
        message = fields.get("return_msg", "")
        raise MalformedNotification(
            f"{what} return_code {shown(return_code)}: {shown(message)} (never a payment or refund result)"
        )


_ACK = Reply(200, _REPLY.format(code="SUCCESS", msg="OK").encode(), "application/xml")


class WeChatPayV2Provider(Provider[WeChatPayV2Settings]):
    """WeChat Pay API v2: XML payment and refund notifications on the `notify` channel."""

    name: ClassVar[str] = "wechatpay-v2"
    settings_model = WeChatPayV2Settings
    channels: ClassVar[frozenset[str]] = frozenset({"notify"})

    def __init__(self) -> None:
        self._api: WeChatPayV2Api | None = None

    def api(self) -> WeChatPayV2Api:
        """Order and refund queries (`_v2_api`), signed and verified with the account's API key."""
        if self._api is None:
            self._api = WeChatPayV2Api(provider=self.name)
        return self._api

    def parse(
        self, request: InboundRequest, account: Account[WeChatPayV2Settings]
    ) -> PaymentResult | UnhandledEvent:
        fields = parse_flat_xml(request.body, "xml", what="notification")
        if "req_info" in fields:
            return self._refund(fields, account)
        return self._payment(fields, account)

    def _payment(
        self, fields: dict[str, str], account: Account[WeChatPayV2Settings]
    ) -> PaymentResult | UnhandledEvent:
        what = "payment notification"
        settings = account.settings
        if "return_code" in fields or not fields.get("sign"):
            _check_return_code(fields, what)  # a FAIL carries no sign: refused before verifying
        verify(fields, settings.key_bytes, settings.sign_type)

        # Verified: from here on the fields are WeChat Pay's, and must have their documented shapes.
        if not (fields.get("out_trade_no") or fields.get("transaction_id")):
            return _unhandled(self.name, account.name, fields)
        try:
            _check_return_code(fields, what)
            provider_status = known(fields, "result_code", what, PAYMENT_STATUSES)
        except MalformedNotification as exc:
            raise invalid(exc, account, fields, Kind.PAYMENT, fields, fields.get("result_code")) from None
        return payment_result(
            self.name, account, fields,
            provider_status=provider_status, status=PAYMENT_STATUSES[provider_status], what=what,
        )  # fmt: skip

    def _refund(self, outer: dict[str, str], account: Account[WeChatPayV2Settings]) -> PaymentResult:
        what = "refund notification"
        settings = account.settings
        _check_return_code(outer, what)
        if "sign" in outer:  # refund notifications are not signed; a sign that is there must hold
            verify(outer, settings.key_bytes, settings.sign_type)
        for name, expected in (("appid", settings.appid), ("mch_id", settings.mch_id)):
            received = required(outer, name, what)
            if received != expected:
                raise VerificationError(
                    f"{what} is for {name} {shown(received)}, this account is {name} {expected!r}; "
                    "its req_info is not this account's to decrypt"
                )
        plaintext = decrypt_req_info(required(outer, "req_info", what), settings.refund_aes_key)
        try:
            inner = parse_flat_xml(plaintext, "root", what="decrypted req_info")
        except MalformedNotification as exc:
            # A wrong key passes the padding check about once in 256 and yields garbage: same cause.
            raise VerificationError(
                f"req_info does not decrypt under this account's API key ({exc.message})"
            ) from None

        # Decrypted with the account's key, but ECB without a MAC: blocks of other genuine refunds
        # can be spliced in. What a splice most easily breaks is checked: one exact document, every
        # field WeChat Pay always sends exactly once and in shape, amounts that agree.
        what = "decrypted req_info"
        raw = {name: value for name, value in outer.items() if name != "req_info"}
        raw.update(inner)
        try:
            if not (plaintext.startswith(b"<root>") and plaintext.endswith(b"</root>")):
                raise MalformedNotification(
                    f"{what} is not exactly one <root> document (something around it)"
                )
            provider_status = known(inner, "refund_status", what, REFUND_STATUSES)
        except MalformedNotification as exc:
            raise invalid(exc, account, raw, Kind.REFUND, inner, inner.get("refund_status")) from None
        return refund_result(
            self.name, account, inner, raw=raw, provider_status=provider_status,
            status=REFUND_STATUSES[provider_status], app_id=outer["appid"], merchant_id=outer["mch_id"],
            complete=True, what=what,
        )  # fmt: skip

    def ack(self) -> Reply:
        return _ACK

    def nack(self, error: NotificationError) -> Reply:
        """FAIL with a short reason, on HTTP 200: WeChat Pay v2 reads return_code, not the status.

        The reason is the error's message (never a secret, never the account name), made safe for
        CDATA: control characters become spaces, `]]>` is removed, and it is cut to 120 characters.
        """
        return Reply(200, _REPLY.format(code="FAIL", msg=_reason(error)).encode(), "application/xml")

    def sample_notification(
        self, account: Account[WeChatPayV2Settings], directory: Path, sample: SampleNotification
    ) -> DemoRequest:
        from paynotify_wechatpay._sample import v2_sample

        return v2_sample(account, sample)

    @classmethod
    def starter(cls, emulator: str | None = None) -> StarterAccount:
        """A throwaway account for `paynotify init`: a fresh API key (HMAC-SHA256), which also
        signs queries; with `emulator`, a `base_url` on the emulator."""
        from paynotify_wechatpay import testing

        account = "shop-wechat-v2"
        settings = {
            "appid": testing.APPID,
            "mch_id": testing.MCH_ID,
            "sign_type": "HMAC-SHA256",
            "api_key_file": "keys/wechatpay_v2_api_key",
        }
        if emulator is not None:
            settings["base_url"] = f"{emulator.rstrip('/')}/{account}"
        return StarterAccount(account, settings, {"keys/wechatpay_v2_api_key": testing.generate_api_key()})

    def emulator(self, account: Account[WeChatPayV2Settings], directory: Path) -> LocalEmulator | None:
        """A `WeChatPayV2Emulator` for the account, signing with its API key."""
        from paynotify_wechatpay import testing

        return testing.local_v2_emulator(account.settings, directory)

    @classmethod
    def demo(cls) -> DemoAccount:
        """A throwaway HMAC-SHA256 account, a paid order and its refund; forged: a changed total_fee.
        The refund is confirmed through refundquery, answered by the emulator that holds both."""
        from paynotify_wechatpay._v2_emulator import WeChatPayV2Emulator

        emulator = WeChatPayV2Emulator(sign_type="HMAC-SHA256")
        emulator.pay("demo-order-1", total_fee=8888)
        emulator.refund("demo-refund-1", "demo-order-1", refund_fee=1000)
        paid = emulator.notification(order="demo-order-1")
        refund = emulator.notification(refund="demo-refund-1")
        forged = paid.replace(b"<total_fee>8888</total_fee>", b"<total_fee>1</total_fee>")
        if forged == paid:  # pragma: no cover - the helper's format changed
            raise RuntimeError("demo: could not forge the payment notification")
        headers = {"content-type": "text/xml"}
        return DemoAccount(
            settings=emulator.account_settings(),
            requests=[
                DemoRequest("payment SUCCESS 88.88 CNY", "notify", headers=headers, body=paid),
                DemoRequest("refund SUCCESS 10.00 of 88.88", "notify", headers=headers, body=refund),
            ],
            forged=DemoRequest(
                "forged: total_fee changed after signing", "notify", headers=headers, body=forged
            ),
            api=emulator,
        )


_CHANGE_TYPE = re.compile(r"[A-Z_]{1,32}")
_NOT_IDENTITY = frozenset({"sign", "nonce_str"})


def v2_event_type(fields: dict[str, str]) -> str:
    """The type of a verified v2 notification that is not a payment or a refund: PAPAY.CONTRACT.ADD
    or PAPAY.CONTRACT.DELETE for a 委托代扣 contract signed or ended (contract_id, change_type),
    UNRECOGNIZED for anything else."""
    if fields.get("contract_id") and "change_type" in fields:
        change = fields["change_type"]
        return "PAPAY.CONTRACT." + change if _CHANGE_TYPE.fullmatch(change) else "PAPAY.CONTRACT"
    return "UNRECOGNIZED"


def _unhandled(provider: str, account: str, fields: dict[str, str]) -> UnhandledEvent:
    """A verified notification with no order in it (no out_trade_no, no transaction_id): recorded
    `unhandled` with every field and acknowledged, never refused for a kind paynotify does not map.
    Its event_id is the same for every resend (all fields but sign and nonce_str) and every copy
    with empty elements added (signed without them: each would be a record of its own)."""
    event_type = v2_event_type(fields)
    identity = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v and k not in _NOT_IDENTITY)
    return UnhandledEvent(
        provider=provider,
        account=account,
        event_type=event_type,
        event_id=make_event_id(account, "event", event_type, identity),
        raw=fields,
    )


def _reason(error: NotificationError) -> str:
    text = "".join(char if char.isprintable() else " " for char in error.message)
    while "]]>" in text:
        text = text.replace("]]>", "")
    text = " ".join(text.split())
    if len(text) > _REASON_LENGTH:
        text = text[: _REASON_LENGTH - 3] + "..."
    return text or type(error).__name__
