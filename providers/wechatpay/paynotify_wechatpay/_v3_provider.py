"""WeChat Pay API v3 notifications (channel `notify`): payments, refunds, and other event types.

One delivery, in order: the signature headers are checked and the signature verified over the
exact body bytes (`_v3_signature`), with the key `Wechatpay-Serial` names among the account's
platform certificates and public key (`_v3_keys`), inside the replay window; only then is the
JSON read (`_v3_envelope`). TRANSACTION.* and REFUND.* events have their resource decrypted with
the APIv3 key (`_v3_crypto`) and become a `PaymentResult` (`_v3_mapping`, which has the status
table); a combined order (sub_orders) becomes one `PaymentResult` per sub-order (`_v3_combined`,
through the same field reader), and a merchant transfer bill (MCHTRANSFER.BILL.FINISHED, that
type only) a `transfer` (`_v3_transfer`). A verified resource out of shape is `InvalidContent`:
recorded `rejected` with its reason, and acknowledged.

Everything else that verifies becomes an `UnhandledEvent` (recorded `unhandled`, acknowledged,
offered to `on_unhandled` hooks) whose `raw["resource"]` is the decrypted resource: profit
sharing's 分账动账通知 (PROFITSHARING.SUCCESS / RETURN, or, as WeChat Pay sent it until March 2025,
TRANSACTION.SUCCESS with original_type `profitsharing`: typed PROFITSHARING.TRANSACTION.SUCCESS,
never read as a payment), the batch and authorization MCHTRANSFER.* events, complaints
(COMPLAINT.*), PAYSCORE.*, and any type paynotify does not know. One whose resource does not
decrypt keeps it encrypted, so an event can never be refused (and resent for a day) for content
paynotify does not know.

A v3 account with `apiv2_key` also takes WeChat Pay v2 XML notifications on the same URL (refunds
started in the merchant platform arrive so): `_v3_v2_bodies`.

Replies: 204 with no body when handled; otherwise `{"code": "FAIL", "message": ...}` with 401
(verification), 400 (malformed), 503 (the same event is in flight) or 500 (anything else). WeChat
Pay reads the HTTP status and resends on any non-2xx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from paynotify import (
    Account,
    DemoAccount,
    DemoRequest,
    InboundRequest,
    InFlight,
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
from paynotify_wechatpay._v3_api import WeChatPayV3Api
from paynotify_wechatpay._v3_combined import combined_results, is_combined
from paynotify_wechatpay._v3_envelope import Envelope
from paynotify_wechatpay._v3_mapping import event_kind, to_result
from paynotify_wechatpay._v3_settings import WeChatPayV3Settings
from paynotify_wechatpay._v3_signature import SignedHeaders, verify
from paynotify_wechatpay._v3_transfer import is_transfer, transfer_result

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from paynotify_wechatpay._v3_v2_bodies import is_v2_body, parse_v2, v2_reply

__all__ = ["WeChatPayV3Provider"]

_STATUS = ((VerificationError, 401), (MalformedNotification, 400), (InFlight, 503))
_MESSAGE_LENGTH = 200
UNHANDLED_KIND = "event"
"""The `kind` part of an UnhandledEvent's event_id (make_event_id(account, "event", type, id))."""


PROFIT_SHARING_PREFIX = "PROFITSHARING."
"""A 分账动账通知 sent as TRANSACTION.SUCCESS becomes an UnhandledEvent of type
PROFITSHARING.TRANSACTION.SUCCESS (raw["event_type"] keeps what WeChat Pay sent)."""
_PROFIT_SHARING_FIELDS = ("receiver", "out_order_no", "order_id")


def is_profit_sharing(envelope: Envelope, resource: Mapping[str, Any]) -> bool:
    """A 分账动账通知 (profit sharing moved money to or back from a receiver): until March 2025
    WeChat Pay sent it with event_type TRANSACTION.SUCCESS, like a payment. Told apart by the
    resource's original_type `profitsharing` (a payment's is `transaction`), or by its shape: a
    receiver and the profit-sharing order ids, no trade_state."""
    if envelope.resource.get("original_type") == "profitsharing":
        return True
    return "trade_state" not in resource and all(name in resource for name in _PROFIT_SHARING_FIELDS)


_ACK = Reply(204)


class WeChatPayV3Provider(Provider[WeChatPayV3Settings]):
    """WeChat Pay API v3: signed JSON notifications with an AES-256-GCM resource, on `notify`.

    `clock` returns the current unix time for the replay window; tests pin it, e.g.
    `WeChatPayV3Provider(clock=lambda: 1624523846)`, and pass the instance to `add_account`.
    """

    name: ClassVar[str] = "wechatpay-v3"
    settings_model = WeChatPayV3Settings
    channels: ClassVar[frozenset[str]] = frozenset({"notify"})

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._api: WeChatPayV3Api | None = None

    def api(self) -> WeChatPayV3Api:
        """Queries and platform certificate downloads (`_v3_api`), on this provider's clock."""
        if self._api is None:
            self._api = WeChatPayV3Api(provider=self.name, clock=lambda: self.clock())
        return self._api

    def parse(
        self, request: InboundRequest, account: Account[WeChatPayV3Settings]
    ) -> PaymentResult | list[PaymentResult] | UnhandledEvent:
        try:
            return self._parse(request, account)
        except NotificationError as exc:
            exc.account = exc.account or account.name
            raise

    def _parse(
        self, request: InboundRequest, account: Account[WeChatPayV3Settings]
    ) -> PaymentResult | list[PaymentResult] | UnhandledEvent:
        settings = account.settings
        if is_v2_body(request.body):  # a refund started in the merchant platform: v2 XML
            return parse_v2(request, account, provider=self.name)
        headers = SignedHeaders.from_headers(request.headers)
        key = verify(
            headers, request.body, settings.keyring, now=self.clock(), tolerance=settings.timestamp_tolerance
        )

        # Verified: from here on the body is WeChat Pay's.
        envelope = Envelope.parse(request.body)
        kind = event_kind(envelope.event_type)
        if kind is None:
            if is_transfer(envelope.event_type):
                resource = settings.decrypt_resource(envelope.resource)
                return transfer_result(account, envelope, resource, provider=self.name, key_id=key.key_id)
            return self._unhandled(envelope, account, key.key_id)
        resource = settings.decrypt_resource(envelope.resource)
        if kind is Kind.PAYMENT:
            if is_profit_sharing(envelope, resource):
                event_type = PROFIT_SHARING_PREFIX + envelope.event_type
                return self._unhandled(envelope, account, key.key_id, resource, event_type)
            if is_combined(resource):
                if settings.service_provider:  # a partner's combined order: verified, offered to hooks
                    return self._unhandled(envelope, account, key.key_id, resource)
                return combined_results(account, envelope, resource, provider=self.name, key_id=key.key_id)
        return to_result(kind, account, envelope, resource, provider=self.name, key_id=key.key_id)

    def _unhandled(
        self,
        envelope: Envelope,
        account: Account[WeChatPayV3Settings],
        key_id: str,
        resource: Mapping[str, Any] | None = None,
        event_type: str | None = None,
    ) -> UnhandledEvent:
        """A verified event paynotify does not normalize, with its decrypted resource; one whose
        resource does not decrypt keeps it encrypted, so no event type can be refused for content
        paynotify does not know (WeChat Pay would resend it for a day)."""
        raw = envelope.fields
        if resource is None:
            try:
                resource = account.settings.decrypt_resource(envelope.resource)
            except NotificationError:
                resource = None
        if resource is not None:
            raw = {**raw, "resource": dict(resource)}
        event_type = event_type or envelope.event_type
        return UnhandledEvent(
            provider=self.name,
            account=account.name,
            event_type=event_type,
            event_id=make_event_id(account.name, UNHANDLED_KIND, event_type, envelope.id),
            key_id=key_id,
            raw=raw,
        )

    def ack(self) -> Reply:
        return _ACK

    def reply_for(self, request: InboundRequest, reply: Reply) -> Reply:
        """A v2 XML notification (taken with apiv2_key) is answered as v2 expects: XML, HTTP 200."""
        return v2_reply(reply) if is_v2_body(request.body) else reply

    def nack(self, error: NotificationError) -> Reply:
        """`{"code":"FAIL","message":...}` with the HTTP status that tells WeChat Pay what happened.

        The message is the error's (never a secret, never the account name), cut to 200
        characters; JSON escaping keeps any received value in it harmless.
        """
        status = next((code for cls, code in _STATUS if isinstance(error, cls)), 500)
        message = (error.message or type(error).__name__)[:_MESSAGE_LENGTH]
        body = json.dumps({"code": "FAIL", "message": message}).encode("ascii")
        return Reply(status, body, "application/json")

    def sample_notification(
        self, account: Account[WeChatPayV3Settings], directory: Path, sample: SampleNotification
    ) -> DemoRequest:
        from paynotify_wechatpay._sample import v3_sample

        return v3_sample(account, directory, sample)

    @classmethod
    def starter(cls, emulator: str | None = None) -> StarterAccount:
        """A throwaway account for `paynotify init`: a fresh WeChat Pay public key and APIv3 key.
        With `emulator`, also the merchant's API key and serial (they sign queries) and a
        `base_url` on the emulator."""
        import secrets

        from paynotify_wechatpay import testing

        key = testing.generate_v3_public_key()
        account = "shop-wechat-v3"
        settings = {
            "appid": testing.APPID,
            "mchid": testing.MCH_ID,
            "apiv3_key_file": "keys/wechatpay_v3_apiv3_key",
            "public_key_id": key.key_id,
            "public_key_file": "keys/wechatpay_v3_public_key.pem",
        }
        files = {
            "keys/wechatpay_v3_apiv3_key": testing.generate_apiv3_key(),
            "keys/wechatpay_v3_public_key.pem": key.public_key_pem,
            testing.PROVIDER_SIDE_V3_KEY: _pem(key.private_key),
        }
        if emulator is not None:
            settings |= {
                "merchant_private_key_file": "keys/wechatpay_v3_merchant_private_key.pem",
                "merchant_serial": secrets.token_hex(20).upper(),
                "base_url": f"{emulator.rstrip('/')}/{account}",
            }
            files["keys/wechatpay_v3_merchant_private_key.pem"] = _pem(testing.generate_merchant_key())
        return StarterAccount(account, settings, files)

    def emulator(self, account: Account[WeChatPayV3Settings], directory: Path) -> LocalEmulator | None:
        """A `WeChatPayV3Emulator` for the account, signing with
        `keys/provider-side/wechatpay_v3_private_key.pem` (public-key mode only)."""
        from paynotify_wechatpay import testing

        return testing.local_v3_emulator(account.settings, directory)

    @classmethod
    def demo(cls) -> DemoAccount:
        """A throwaway account trusting a platform certificate and a public key at once (a migration):
        a payment signed with the certificate, its refund with the public key; forged: a changed body."""
        from paynotify_wechatpay import testing

        certificate = testing.generate_v3_platform_certificate()
        public_key = testing.generate_v3_public_key()
        apiv3_key = testing.generate_apiv3_key()
        mchid, appid = testing.MCH_ID, testing.APPID
        paid_headers, paid = testing.make_v3_transaction_notify(
            certificate, apiv3_key, appid=appid, mchid=mchid, out_trade_no="demo-order-1"
        )
        refund_headers, refund = testing.make_v3_refund_notify(
            public_key, apiv3_key, mchid=mchid, out_trade_no="demo-order-1",
            out_refund_no="demo-refund-1", total=8888, refund=1000,
        )  # fmt: skip
        # The same JSON content, one space added after signing: a re-serialised body must not verify.
        forged = paid.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCESS" ')
        if forged == paid:  # pragma: no cover - the helper's format changed
            raise RuntimeError("demo: could not forge the payment notification")
        forgery = DemoRequest(
            "forged: body changed after signing", "notify", headers=paid_headers, body=forged
        )
        return DemoAccount(
            settings={
                "mchid": mchid,
                "appid": appid,
                "apiv3_key": apiv3_key,
                "platform_certificates": [certificate.certificate_pem],
                "public_key_id": public_key.key_id,
                "public_key": public_key.public_key_pem,
            },
            requests=[
                DemoRequest("TRANSACTION.SUCCESS 88.88 CNY", "notify", headers=paid_headers, body=paid),
                DemoRequest("REFUND.SUCCESS 10.00 of 88.88", "notify", headers=refund_headers, body=refund),
            ],
            forged=forgery,
        )


def _pem(key: RSAPrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
