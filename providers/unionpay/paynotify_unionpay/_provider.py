"""UnionPay back-end notifications (channel `notify`, backUrl) and front returns (channel `return`,
frontUrl).

One delivery, in order: the form is decoded once to bytes (`_form`); the signing certificate is
found (5.1.0: `signPubKeyCert`, trusted through the account's CFCA chain at the provider's clock;
5.0.0: the configured verify certificate `certId` names) and the signature verified over the
sign string (`_signature`); only then is any business field read (`_mapping`, which has the
table, and `_shapes`, which holds verified fields to their shapes). The version picks the scheme,
but only among what the account trusts: 5.0.0 (SHA-1) is refused unless the account configures
`verify_certs`.

Replies: 200 `ok` when handled, and when verified content out of shape is recorded `rejected`
(UnionPay reads the status only; its demo answers `ok`). Otherwise `fail` with 401 (verification),
400 (a malformed form, before verifying), 503 (the same event is in flight) or 500 (a subscriber or
the store failed): UnionPay resends on anything but 200.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from paynotify import (
    Account,
    DemoAccount,
    DemoRequest,
    InboundRequest,
    InFlight,
    LocalEmulator,
    MalformedNotification,
    NotificationError,
    PaymentResult,
    Provider,
    Reply,
    SampleNotification,
    Source,
    StarterAccount,
    UnhandledEvent,
    VerificationError,
)
from paynotify_unionpay._api import UnionPayApi
from paynotify_unionpay._certs import Certificate, parse_signing_certificate
from paynotify_unionpay._form import Form, decode_form
from paynotify_unionpay._mapping import to_result
from paynotify_unionpay._settings import UnionPaySettings
from paynotify_unionpay._signature import SIGN_METHOD, VERSIONS, Version, sign_string, verify

__all__ = ["UnionPayProvider"]

_STATUS = ((VerificationError, 401), (MalformedNotification, 400), (InFlight, 503))
_ACK = Reply.text("ok")
_FORM_CONTENT_TYPE = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


class UnionPayProvider(Provider[UnionPaySettings]):
    """UnionPay (银联 全渠道 / ACP): signMethod 01, versions 5.1.0 and 5.0.0, on `notify` and `return`.

    `clock` returns the current unix time, at which signing certificates must be valid; tests pin
    it, e.g. `UnionPayProvider(clock=lambda: 1662614526)`, and pass the instance to `add_account`.
    """

    name: ClassVar[str] = "unionpay"
    settings_model = UnionPaySettings
    channels: ClassVar[frozenset[str]] = frozenset({"notify", "return"})

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._api: UnionPayApi | None = None

    def api(self) -> UnionPayApi:
        """Transaction status queries (queryTrans.do, `_api`), verified by this provider's rules."""
        if self._api is None:
            self._api = UnionPayApi(self)
        return self._api

    def verify(self, form: Form, settings: UnionPaySettings) -> Certificate:
        """Verify a decoded form signed by UnionPay (a notification, or an API answer): the
        certificate that signed it; VerificationError otherwise."""
        return self._verify(form, settings)

    def parse(
        self, request: InboundRequest, account: Account[UnionPaySettings]
    ) -> PaymentResult | UnhandledEvent:
        try:
            return self._parse(request, account)
        except NotificationError as exc:
            exc.account = exc.account or account.name
            raise

    def _parse(
        self, request: InboundRequest, account: Account[UnionPaySettings]
    ) -> PaymentResult | UnhandledEvent:
        source = Source.RETURN if request.channel == Source.RETURN.value else Source.NOTIFY
        use_query = source is Source.RETURN and request.method.upper() == "GET"
        form = decode_form(request.query if use_query else request.body)
        certificate = self._verify(form, account.settings)
        # Verified: from here on the fields are UnionPay's.
        return to_result(self.name, account.name, form.text(), source, certificate.serial)

    def _verify(self, form: Form, settings: UnionPaySettings) -> Certificate:
        raw = form.raw
        method = raw.get(b"signMethod", b"")
        if method != SIGN_METHOD.encode():
            raise VerificationError(
                f"signMethod {_show(method)} is not supported (only 01, RSA with UnionPay's certificate)"
            )
        version_bytes = raw.get(b"version", b"")
        version = version_bytes.decode("ascii", "replace")
        if version not in VERSIONS:
            raise VerificationError(f"version {_show(version_bytes)} is not supported (5.1.0 or 5.0.0)")
        signature = raw.get(b"signature", b"")
        if not signature:
            raise VerificationError("the message has no signature")
        checked: Version = "5.1.0" if version == "5.1.0" else "5.0.0"
        certificate = (
            self._signing_certificate(raw, settings) if checked == "5.1.0" else _verify_cert(raw, settings)
        )
        verify(sign_string(raw), signature, certificate, checked)
        return certificate

    def _signing_certificate(self, raw: dict[bytes, bytes], settings: UnionPaySettings) -> Certificate:
        pem = raw.get(b"signPubKeyCert", b"")
        if not pem:
            raise VerificationError("a 5.1.0 message without signPubKeyCert")
        certificate = parse_signing_certificate(pem)
        settings.trust_chain.check(certificate, self.clock())
        return certificate

    def ack(self) -> Reply:
        return _ACK

    def nack(self, error: NotificationError) -> Reply:
        status = next((code for cls, code in _STATUS if isinstance(error, cls)), 500)
        return Reply.text("fail", status)

    def sample_notification(
        self, account: Account[UnionPaySettings], directory: Path, sample: SampleNotification
    ) -> DemoRequest:
        from paynotify_unionpay._sample import sample_notification

        return sample_notification(account, directory, sample)

    @classmethod
    def starter(cls, emulator: str | None = None) -> StarterAccount:
        """A throwaway account for `paynotify init`: a fresh CFCA-like chain trusted as the account's
        root and middle, its leaf as the 5.0.0 verify certificate. With `emulator`, also the
        merchant's signing certificate (a .pfx, as base64, and its password: they sign queries)
        and a `base_url` and `file_url` on the emulator."""
        import base64

        from cryptography.hazmat.primitives import serialization

        from paynotify_unionpay import testing

        chain = testing.generate_chain()
        leaf_key = chain.leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        account = "shop-unionpay"
        settings: dict[str, str | list[str]] = {
            "mer_id": testing.MER_ID,
            "root_cert_file": "keys/unionpay_root.pem",
            "middle_cert_file": "keys/unionpay_middle.pem",
            "verify_certs_file": ["keys/unionpay_verify.pem"],
        }
        files = {
            "keys/unionpay_root.pem": chain.root_pem,
            "keys/unionpay_middle.pem": chain.middle_pem,
            "keys/unionpay_verify.pem": chain.leaf_pem,
            testing.PROVIDER_SIDE_KEY: leaf_key,
        }
        if emulator is not None:
            merchant = testing.generate_merchant_certificate()
            url = f"{emulator.rstrip('/')}/{account}"
            settings |= {
                "signing_pfx_file": "keys/unionpay_signing_pfx.b64",
                "signing_pfx_password_file": "keys/unionpay_signing_pfx_password",
                "base_url": url,
                "file_url": url + "/",
            }
            files["keys/unionpay_signing_pfx.b64"] = base64.b64encode(merchant.pfx).decode("ascii")
            files["keys/unionpay_signing_pfx_password"] = merchant.password
        return StarterAccount(account, settings, files)

    def emulator(self, account: Account[UnionPaySettings], directory: Path) -> LocalEmulator | None:
        """A `UnionPayEmulator` for the account, signing with the leaf of its chain
        (`keys/provider-side/unionpay_signing_key.pem`)."""
        from paynotify_unionpay import testing

        return testing.local_emulator(account.settings, directory)

    @classmethod
    def demo(cls) -> DemoAccount:
        """A throwaway CFCA-like chain trusted by the account: a consume, its refund and the buyer's
        front return, all 5.1.0; forged: the consume with its amount changed after signing."""
        from paynotify_unionpay import testing

        chain = testing.generate_chain()
        mer_id = testing.MER_ID
        paid = testing.make_notify(chain, mer_id=mer_id, order_id="demo20260101001", txn_amt="8888")
        refund = testing.make_notify(
            chain,
            mer_id=mer_id,
            order_id="demo20260101001R1",
            txn_type="04",
            txn_amt="1000",
            orig_qry_id=testing.query_id(mer_id, "demo20260101001"),
        )
        returned = testing.make_notify(chain, mer_id=mer_id, order_id="demo20260101001", txn_amt="8888")
        forged = paid.replace(b"txnAmt=8888", b"txnAmt=1")
        if forged == paid:  # pragma: no cover - the helper's format changed
            raise RuntimeError("demo: could not forge the consume notification")
        return DemoAccount(
            settings={"mer_id": mer_id, **chain.account_settings()},
            requests=[
                DemoRequest("consume 88.88 CNY", "notify", "POST", _FORM_CONTENT_TYPE, body=paid),
                DemoRequest("refund 10.00 of it", "notify", "POST", _FORM_CONTENT_TYPE, body=refund),
                DemoRequest("front return (browser)", "return", "POST", _FORM_CONTENT_TYPE, body=returned),
            ],
            forged=DemoRequest(
                "forged consume (amount changed after signing)",
                "notify",
                "POST",
                _FORM_CONTENT_TYPE,
                body=forged,
            ),
        )


def _show(value: bytes) -> str:
    return repr(value[:20].decode("ascii", "backslashreplace"))


def _verify_cert(raw: dict[bytes, bytes], settings: UnionPaySettings) -> Certificate:
    """The configured verify certificate a 5.0.0 message's certId names."""
    cert_id = raw.get(b"certId", b"").decode("ascii", "replace")
    known = settings.verify_certificates
    if not known:
        raise VerificationError(
            "a 5.0.0 message, and the account has no verify_certs (UnionPay's verify certificate, "
            "acp_*_verify_sign.cer, matched by certId)"
        )
    certificate = known.get(cert_id)
    if certificate is None:
        configured = ", ".join(sorted(known))
        raise VerificationError(
            f"certId {cert_id[:40]!r} names no configured verify certificate "
            f"(configured certIds: {configured})"
        )
    return certificate
