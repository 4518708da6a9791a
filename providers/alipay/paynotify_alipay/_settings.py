"""The settings of one Alipay account (app); keys and certificates are loaded once, when it is added."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from paynotify import AccountSettings
from paynotify_alipay._certs import cert_sn, load_alipay_certificate, load_root_cert_sn, read_certificates
from paynotify_alipay._signature import AlipayPublicKey, SignType, load_public_key

__all__ = ["PRODUCTION_GATEWAY", "SANDBOX_GATEWAY", "AlipaySettings"]

PRODUCTION_GATEWAY = "https://openapi.alipay.com/gateway.do"
SANDBOX_GATEWAY = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"

_R = TypeVar("_R")
_Problem = tuple[tuple[str | int, ...], str]  # where, and what is wrong (a sentence without subject)

# How each setting's problems begin, after its name: "alipay_public_cert: this certificate file ..."
_SUBJECT = {
    "app_cert": ("this app certificate file ", "certificate"),
    "alipay_public_key": ("this key ", "key"),
    "alipay_public_cert": ("this certificate file ", "certificate"),
    "alipay_root_cert": ("this root certificate file ", "root certificate"),
}


class AlipaySettings(AccountSettings):
    """One Alipay app, in public key mode, certificate mode (公钥证书模式), or both while migrating.

    notifier.add_account("shop", "alipay", app_id="2021000000000000",
                         alipay_public_key=ALIPAY_PUBLIC_KEY, seller_id="2088000000000000")
    notifier.add_account("shop", "alipay", app_id="2021000000000000",
                         alipay_public_cert="certs/alipayCertPublicKey_RSA2.crt")

    `alipay_public_key` is Alipay's public key for this app (支付宝公钥), not the app's own public
    key (应用公钥): a PEM public key, a PEM certificate, or the one-line base64 shown in Alipay's
    console. `alipay_public_cert` is Alipay's public key certificate, alipayCertPublicKey_RSA2.crt
    (its content, or a path to it), whose first certificate's key verifies. Either may be a list
    while Alipay rotates, and both may be given at once: a notification verified by any configured
    key or certificate is accepted. At least one of the two is required.
    """

    app_id: str = Field(min_length=1)
    alipay_public_key: str | list[str] | None = Field(default=None, repr=False)
    alipay_public_cert: str | Path | list[str | Path] | None = Field(default=None, repr=False)
    """alipayCertPublicKey_RSA2.crt as PEM content or a path (a chain: the first certificate
    counts); a list while rotating. Expiry and chain are not checked per notification."""
    alipay_root_cert: str | Path | None = Field(default=None, repr=False)
    """alipayRootCert.crt (content or path); only to compute `alipay_root_cert_sn`."""
    sign_type: SignType = "RSA2"
    """The hash the app signs with: RSA2 (SHA-256) or RSA (SHA-1). Never taken from a notification."""
    seller_id: str | None = Field(default=None, min_length=1)
    """The merchant's PID (2088...); when set, notifications for another seller are refused."""
    app_private_key: SecretStr | None = Field(default=None, repr=False)
    """The app's private key (应用私钥), to sign queries: PEM, or the one-line base64 Alipay's key
    tool writes. Without it the account receives notifications and cannot query."""
    app_cert: str | Path | None = Field(default=None, repr=False)
    """appCertPublicKey_<app_id>.crt (content or path): certificate mode queries name its SN."""
    base_url: str = Field(default=PRODUCTION_GATEWAY, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    """Alipay's gateway, for queries: production by default; SANDBOX_GATEWAY, or an emulator's."""

    _public_keys: tuple[AlipayPublicKey, ...] = PrivateAttr(default=())
    _root_cert_sn: str | None = PrivateAttr(default=None)
    _app_key: RSAPrivateKey | None = PrivateAttr(default=None)
    _app_cert_sn: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load_keys(self) -> Self:
        problems: list[_Problem] = []
        certs = _load("alipay_public_cert", self.alipay_public_cert, load_alipay_certificate, problems)
        keys = _load("alipay_public_key", self.alipay_public_key, load_public_key, problems)
        roots = _load("alipay_root_cert", self.alipay_root_cert, load_root_cert_sn, problems)
        app_key = _app_key(self.app_private_key, problems)
        app_sn = _load("app_cert", self.app_cert, load_app_cert_sn, problems)
        if self.alipay_public_key is None and self.alipay_public_cert is None:
            problems.append(
                (
                    (),
                    "need alipay_public_key (public key mode) or alipay_public_cert (certificate mode: "
                    "alipayCertPublicKey_RSA2.crt), or both while migrating from one to the other",
                )
            )
        if problems:
            # A ValidationError (not a ValueError) keeps each problem's own location, list index included.
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("alipay_keys", "{problem}", {"problem": problem}),
                        loc=loc,
                        input="<hidden>",
                    )
                    for loc, problem in problems
                ],
            )
        # Certificates first: when one key is configured both ways, results name it by its cert SN.
        self._public_keys = tuple({key.key_id: key for key in [*certs, *keys]}.values())
        self._root_cert_sn = roots[0] if roots else None
        self._app_key = app_key
        self._app_cert_sn = app_sn[0] if app_sn else None
        return self

    @property
    def public_keys(self) -> tuple[AlipayPublicKey, ...]:
        """The trusted Alipay keys, loaded; their `key_id`s appear in verification errors and results."""
        return cast(tuple[AlipayPublicKey, ...], self._loaded("_public_keys"))

    @property
    def alipay_cert_sn(self) -> str | None:
        """The SN (alipay_cert_sn) of the first `alipay_public_cert`; None in public key mode."""
        return next((key.cert_sn for key in self._public_keys if key.cert_sn), None)

    @property
    def alipay_root_cert_sn(self) -> str | None:
        """The alipay_root_cert_sn of `alipay_root_cert`; None when no root certificate is given."""
        return self._root_cert_sn

    @property
    def app_key(self) -> RSAPrivateKey | None:
        """The app's private key, loaded; None without one. Secret: never log it."""
        return cast("RSAPrivateKey | None", self._loaded("_app_key"))

    @property
    def app_cert_sn(self) -> str | None:
        """The SN of `app_cert` (app_cert_sn); None when no app certificate is given."""
        return self._app_cert_sn

    @property
    def certificate_mode(self) -> bool:
        """Whether Alipay's key comes from a certificate: queries then carry both SNs."""
        return self.alipay_public_cert is not None

    def expected_app_id(self) -> str:
        return self.app_id

    def expected_merchant_id(self) -> str | None:
        return self.seller_id


def _load(name: str, value: object, loader: Callable[[Any], _R], problems: list[_Problem]) -> list[_R]:
    """Load one setting (None, a value, or a list of values), collecting problems with their place."""
    if value is None:
        return []
    subject, noun = _SUBJECT[name]
    if isinstance(value, list) and not value:
        problems.append(((name,), f"list is empty; at least one {noun} is needed"))
    items: list[tuple[tuple[str | int, ...], object]] = (
        [((name, i), v) for i, v in enumerate(value)] if isinstance(value, list) else [((name,), value)]
    )
    loaded = []
    for loc, item in items:
        try:
            loaded.append(loader(item))
        except ValueError as exc:
            problems.append((loc, subject + str(exc)))
    return loaded


def load_app_cert_sn(value: str | bytes | Path) -> str:
    """app_cert_sn: the SN of the app's public key certificate (its first certificate)."""
    ders = read_certificates(value)
    if not ders:
        raise ValueError("holds no certificate")
    return cert_sn(ders[0])


def _app_key(value: SecretStr | None, problems: list[_Problem]) -> RSAPrivateKey | None:
    if value is None:
        return None
    text = value.get_secret_value().strip()
    try:
        if "PRIVATE KEY" in text:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:  # the one-line base64 of Alipay's key tool: PKCS#8 DER
            key = serialization.load_der_private_key(base64.b64decode(text, validate=True), password=None)
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm, binascii.Error):
        problems.append((("app_private_key",), "is not a readable RSA private key (PEM or one-line base64)"))
        return None
    if not isinstance(key, RSAPrivateKey) or key.key_size < 2048:
        problems.append((("app_private_key",), "must be an RSA private key of 2048 bits or more"))
        return None
    return key
