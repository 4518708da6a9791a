"""The settings of one WeChat Pay API v2 merchant account; keys are derived once, when it is added."""

from __future__ import annotations

from typing import Self, cast

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from paynotify import AccountSettings
from paynotify_wechatpay._v2_refund_crypto import refund_key
from paynotify_wechatpay._v2_signature import SignType

__all__ = ["API_KEY_LENGTH", "PRODUCTION_BASE_URL", "WeChatPayV2Settings"]

API_KEY_LENGTH = 32
PRODUCTION_BASE_URL = "https://api.mch.weixin.qq.com"
"""Where v2 queries go (`/pay/orderquery`, `/pay/refundquery`) unless the account says otherwise."""


class WeChatPayV2Settings(AccountSettings):
    """One WeChat Pay merchant (or service provider) using API v2.

    notifier.add_account("shop", "wechatpay-v2", appid="wx0000000000000001", mch_id="1900000001",
                         api_key=API_KEY, sign_type="HMAC-SHA256")

    `api_key` is the API v2 key (API密钥) set in the merchant platform: exactly 32 ASCII characters.
    `sign_type` is the algorithm the account signs with (MD5 or HMAC-SHA256); notifications are
    verified with it whatever they say, and queries are signed with it. Refund notifications are
    confirmed through refundquery before delivery (`confirm_refunds`). `base_url` is where queries
    go (production by default; the emulator's for tests and local development). In
    service-provider mode, `appid` and `mch_id` are the service provider's (the sub-merchant's ids
    arrive as sub_appid / sub_mch_id, kept in `raw`); queries are the direct merchant's form only.
    """

    appid: str = Field(min_length=1)
    mch_id: str = Field(min_length=1)
    api_key: SecretStr = Field(repr=False)
    sign_type: SignType = "MD5"
    """MD5 (the default) or HMAC-SHA256. Never taken from a notification."""
    confirm_refunds: bool = True
    """Ask refundquery about every refund notification before it is believed (its req_info is not
    authenticated: AES-ECB without a MAC can be spliced). False believes the notification alone."""
    base_url: str = Field(default=PRODUCTION_BASE_URL, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    """WeChat Pay's API, for queries; another for the emulator (`paynotify_wechatpay.testing`)."""

    _key: bytes = PrivateAttr(default=b"")
    _refund_key: bytes = PrivateAttr(default=b"")

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if not key:
            raise ValueError("is empty; set the 32-character API v2 key (API密钥) of the merchant platform")
        if len(key) != API_KEY_LENGTH or not all("!" <= char <= "~" for char in key):
            raise ValueError(
                f"must be the API v2 key (API密钥) set in the merchant platform: exactly {API_KEY_LENGTH} "
                f"printable ASCII characters, no spaces; this one has {len(key)} characters"
                + ("" if key.isascii() else ", some of them not ASCII")
                + ("" if key == key.strip() else ", with spaces at the ends")
            )
        return value

    @model_validator(mode="after")
    def _derive_keys(self) -> Self:
        self._key = self.api_key.get_secret_value().encode("ascii")
        self._refund_key = refund_key(self._key)
        return self

    @property
    def key_bytes(self) -> bytes:
        """The API key as bytes, for signing and verifying. Secret: never log it."""
        return cast(bytes, self._loaded("_key"))

    @property
    def refund_aes_key(self) -> bytes:
        """md5(API key) hex, the AES-256 key of refund notifications' req_info. Secret."""
        return cast(bytes, self._loaded("_refund_key"))

    def expected_app_id(self) -> str:
        return self.appid

    def expected_merchant_id(self) -> str:
        return self.mch_id
