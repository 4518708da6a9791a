"""The settings of one WeChat Pay API v3 merchant account; keys are loaded once, when it is added."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from paynotify import AccountSettings
from paynotify_wechatpay._v2_settings import WeChatPayV2Settings
from paynotify_wechatpay._v2_signature import SignType
from paynotify_wechatpay._v3_certificates import PlatformCertificates
from paynotify_wechatpay._v3_crypto import decrypt_resource, resource_json
from paynotify_wechatpay._v3_keys import (
    PUBLIC_KEY_ID_PREFIX,
    Keyring,
    V3Key,
    load_platform_certificates,
    load_public_key,
)

__all__ = ["APIV3_KEY_LENGTH", "PRODUCTION_BASE_URL", "WeChatPayV3Settings"]

APIV3_KEY_LENGTH = 32
PRODUCTION_BASE_URL = "https://api.mch.weixin.qq.com"

Loc = tuple[str | int, ...]


class WeChatPayV3Settings(AccountSettings):
    """One WeChat Pay merchant, or one service provider (服务商), using API v3.

    notifier.add_account("shop", "wechatpay-v3", mchid="1900000001", appid="wx0000000000000001",
                         apiv3_key=APIV3_KEY, public_key_id="PUB_KEY_ID_0119...", public_key=PEM)

    Keys: `platform_certificates` (平台证书, PEM; one or a list), `public_key_id` with `public_key`
    (微信支付公钥), or both at once while migrating or rotating; at least one is required.
    `apiv2_key` (and `apiv2_sign_type`) lets the account take WeChat Pay v2 XML notifications on
    the same URL: refunds started in the merchant platform are sent so.

    Direct merchant: `mchid` and `appid`; every notification must be for them. Service provider:
    `sp_mchid` and `sp_appid` (the service provider's own ids; its keys verify and decrypt) instead,
    plus optionally `sub_mchid` (only that sub-merchant's notifications are accepted; without it,
    any sub-merchant of this service provider's) and `sub_appid` (payments must carry it).

    Asking WeChat Pay (queries, certificate downloads) needs the merchant's API key pair:
    `merchant_private_key` (apiclient_key.pem) and `merchant_serial` (its certificate's serial).
    With them an account may configure no WeChat Pay key at all: its platform certificates are then
    downloaded (`/v3/certificates`). Without them the account receives notifications as before.
    """

    mchid: str | None = Field(default=None, min_length=1)
    appid: str | None = Field(default=None, min_length=1)
    apiv3_key: SecretStr = Field(repr=False)
    """The APIv3 key (APIv3密钥) set in the merchant platform: exactly 32 bytes."""
    platform_certificates: str | list[str] = Field(default_factory=list, repr=False)
    """WeChat Pay platform certificates (PEM); a single string may hold one or several."""
    public_key_id: str | None = Field(default=None, min_length=1)
    """The id of WeChat Pay's public key, `PUB_KEY_ID_...`, exactly as the merchant platform shows it."""
    public_key: str | None = Field(default=None, repr=False)
    """WeChat Pay's public key (微信支付公钥), PEM `-----BEGIN PUBLIC KEY-----`."""
    timestamp_tolerance: int = Field(default=300, gt=0)
    """Seconds a notification's timestamp may be from now, either way (the replay window)."""
    sp_mchid: str | None = Field(default=None, min_length=1)
    sp_appid: str | None = Field(default=None, min_length=1)
    sub_mchid: str | None = Field(default=None, min_length=1)
    sub_appid: str | None = Field(default=None, min_length=1)
    apiv2_key: SecretStr | None = Field(default=None, repr=False)
    """The account's API v2 key (API密钥), to take v2 XML notifications on the v3 URL too (refunds
    started in the merchant platform are sent so); without it they are refused (401)."""
    apiv2_sign_type: SignType = "MD5"
    """How the account's v2 payment notifications are signed (MD5 or HMAC-SHA256); v2 refund
    notifications carry no signature."""
    merchant_private_key: SecretStr | None = Field(default=None, repr=False)
    """The merchant's API private key (商户API私钥, apiclient_key.pem, PEM): signs requests to WeChat Pay."""
    merchant_serial: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[0-9A-Fa-f]+$")
    """The serial number of the merchant's API certificate (商户API证书序列号), hex."""
    base_url: str = Field(default=PRODUCTION_BASE_URL, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    """WeChat Pay's API; another for the emulator (`paynotify_wechatpay.testing`)."""

    _apiv3: bytes = PrivateAttr(default=b"")
    _keyring: Keyring = PrivateAttr(default_factory=lambda: Keyring(()))
    _aead: AESGCM | None = PrivateAttr(default=None)
    _v2: WeChatPayV2Settings | None = PrivateAttr(default=None)
    _certificates: PlatformCertificates = PrivateAttr(default_factory=lambda: PlatformCertificates(()))
    _merchant_key: RSAPrivateKey | None = PrivateAttr(default=None)

    @field_validator("apiv3_key")
    @classmethod
    def _check_apiv3_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        size = len(key.encode())
        if size != APIV3_KEY_LENGTH or key != key.strip():
            raise ValueError(
                f"must be the APIv3 key (APIv3密钥) set in the merchant platform: exactly "
                f"{APIV3_KEY_LENGTH} bytes; this one has {size} bytes"
                + ("" if key == key.strip() else ", with spaces or a newline at the ends")
            )
        return value

    @field_validator("public_key_id")
    @classmethod
    def _check_public_key_id(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(PUBLIC_KEY_ID_PREFIX):
            raise ValueError(
                f"must start with {PUBLIC_KEY_ID_PREFIX} (the id shown beside WeChat Pay's public key in "
                "the merchant platform); platform certificates go in platform_certificates"
            )
        return value

    @model_validator(mode="after")
    def _load(self) -> Self:
        problems = self._mode_problems()
        merchant_key = self._load_merchant_key(problems)
        keys = self._load_keys(problems, downloadable=merchant_key is not None)
        v2 = self._load_v2(problems)
        if problems:
            # A ValidationError (not a ValueError) keeps each problem's own location, list index included.
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("wechatpay_v3", "{problem}", {"problem": message}),
                        loc=loc,
                        input="<hidden>",
                    )
                    for loc, message in problems
                ],
            )
        self._keyring = Keyring(keys)
        self._v2 = v2
        self._merchant_key = merchant_key
        # Watched (an unknown serial asks for a download) only where a download can help.
        self._certificates = PlatformCertificates(keys, watched=self._downloads(merchant_key))
        self._apiv3 = self.apiv3_key.get_secret_value().encode()
        self._aead = AESGCM(self._apiv3)
        return self

    def _mode_problems(self) -> list[tuple[Loc, str]]:
        """Direct merchant (mchid, appid) or service provider (sp_mchid, sp_appid, sub_*), not both."""
        if self.sp_mchid is None and self.sp_appid is None:
            needed, refused = ("mchid", "appid"), ("sub_mchid", "sub_appid")
            missing = "is required (or sp_mchid and sp_appid for a service provider)"
            extra = "is for service providers; set sp_mchid and sp_appid too"
        else:
            needed, refused = ("sp_mchid", "sp_appid"), ("mchid", "appid")
            missing = "is required for a service provider (with sp_mchid / sp_appid)"
            extra = "is for direct merchants; a service provider sets sp_mchid / sp_appid (and sub_mchid)"
        problems: list[tuple[Loc, str]] = [((n,), missing) for n in needed if getattr(self, n) is None]
        return problems + [((n,), extra) for n in refused if getattr(self, n) is not None]

    def _load_v2(self, problems: list[tuple[Loc, str]]) -> WeChatPayV2Settings | None:
        """The v2 settings the same merchant has, for v2 notifications: its ids and apiv2_key."""
        if self.apiv2_key is None or problems:
            return None
        try:
            return WeChatPayV2Settings(
                appid=self.expected_app_id(),
                mch_id=self.sp_mchid if self.service_provider else self.mchid,
                api_key=self.apiv2_key,
                sign_type=self.apiv2_sign_type,
            )
        except ValidationError as exc:
            problems.extend(
                (("apiv2_key",), str(error["msg"]).removeprefix("Value error, ")) for error in exc.errors()
            )
            return None

    def _downloads(self, merchant_key: RSAPrivateKey | None) -> bool:
        """Certificate mode with a merchant key: platform certificates are downloaded."""
        return merchant_key is not None and (self.public_key_id is None or bool(self.platform_certificates))

    def _load_merchant_key(self, problems: list[tuple[Loc, str]]) -> RSAPrivateKey | None:
        if (self.merchant_private_key is None) != (self.merchant_serial is None):
            missing = "merchant_serial" if self.merchant_serial is None else "merchant_private_key"
            problems.append(
                ((missing,), "is missing: merchant_private_key and merchant_serial are set together")
            )
            return None
        if self.merchant_private_key is None:
            return None
        text = self.merchant_private_key.get_secret_value()
        if "PRIVATE KEY" not in text:
            problems.append(
                (
                    ("merchant_private_key",),
                    "is not a PEM private key (apiclient_key.pem: -----BEGIN PRIVATE KEY-----)",
                )
            )
            return None
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
            problems.append(
                (
                    ("merchant_private_key",),
                    "is a PEM private key that cannot be read (damaged, or encrypted?)",
                )
            )
            return None
        if not isinstance(key, RSAPrivateKey) or key.key_size < 2048:
            problems.append(
                (
                    ("merchant_private_key",),
                    "is not an RSA key of 2048 bits or more (WeChat Pay API v3 signs with RSA)",
                )
            )
            return None
        return key

    def _load_keys(self, problems: list[tuple[Loc, str]], *, downloadable: bool = False) -> list[V3Key]:
        keys = self._load_certificates(problems)
        if (self.public_key_id is None) != (self.public_key is None):
            missing = "public_key" if self.public_key is None else "public_key_id"
            problems.append(((missing,), "is missing: public_key_id and public_key are set together"))
        elif self.public_key_id is not None and self.public_key is not None:
            try:
                keys.append(load_public_key(self.public_key_id, self.public_key))
            except ValueError as exc:
                problems.append((("public_key",), f"this key {exc}"))
        if not keys and not problems and not downloadable:
            problems.append(
                (
                    ("platform_certificates",),
                    "no WeChat Pay key is configured: set platform_certificates, or public_key_id and "
                    "public_key, or both",
                )
            )
        return keys

    def _load_certificates(self, problems: list[tuple[Loc, str]]) -> list[V3Key]:
        value = self.platform_certificates
        texts = [value] if isinstance(value, str) else value
        by_serial: dict[str, V3Key] = {}
        for index, text in enumerate(texts):
            loc: Loc = (
                ("platform_certificates",) if isinstance(value, str) else ("platform_certificates", index)
            )
            try:
                loaded = load_platform_certificates(text)
            except ValueError as exc:
                problems.append((loc, f"this certificate {exc}"))
                continue
            for key in loaded:
                known = by_serial.setdefault(key.key_id, key)
                if known.key.public_numbers() != key.key.public_numbers():
                    problems.append((loc, f"two different certificates have serial {key.key_id}"))
        return list(by_serial.values())

    @property
    def service_provider(self) -> bool:
        """True when the account is a service provider's (sp_mchid is set)."""
        return self.sp_mchid is not None

    @property
    def keyring(self) -> Keyring:
        """The trusted WeChat Pay keys, loaded (and any downloaded platform certificates); their ids
        appear in errors and in `key_id`."""
        return cast(PlatformCertificates, self._loaded("_certificates")).keyring

    @property
    def certificates(self) -> PlatformCertificates:
        """The holder of this account's trusted keys, downloaded platform certificates included."""
        return cast(PlatformCertificates, self._loaded("_certificates"))

    @property
    def downloads_certificates(self) -> bool:
        """True for an account in certificate mode with its merchant key: it downloads them."""
        return self._downloads(self.merchant_key)

    @property
    def merchant_key(self) -> RSAPrivateKey | None:
        """The merchant's API private key, loaded; None without one. Secret: never log it."""
        return cast("RSAPrivateKey | None", self._loaded("_merchant_key"))

    @property
    def aead(self) -> AESGCM:
        """AES-256-GCM keyed with the APIv3 key. Secret: never log it."""
        return cast(AESGCM, self._loaded("_aead"))

    @property
    def api_mchid(self) -> str:
        """The merchant id requests are signed for: mchid, or a service provider's sp_mchid."""
        return cast(str, self.sp_mchid if self.service_provider else self.mchid)

    @property
    def v2_settings(self) -> WeChatPayV2Settings | None:
        """The same merchant as a v2 account (apiv2_key set), or None."""
        return cast("WeChatPayV2Settings | None", self._loaded("_v2"))

    @property
    def apiv3_key_bytes(self) -> bytes:
        """The APIv3 key as bytes, the AES-256-GCM key. Secret: never log it."""
        return self._apiv3

    def decrypt_resource(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """Decrypt a notification's `resource` with this account's APIv3 key.

        For `on_unhandled` hooks: an `UnhandledEvent` carries its resource still encrypted, in
        `event.raw["resource"]`. Raises MalformedNotification or VerificationError.
        """
        return resource_json(decrypt_resource(resource, cast(AESGCM, self._loaded("_aead"))))

    def expected_app_id(self) -> str | None:
        return self.sp_appid if self.service_provider else self.appid

    def expected_merchant_id(self) -> str | None:
        return self.sub_mchid if self.service_provider else self.mchid
