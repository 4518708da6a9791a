"""The settings of one UnionPay merchant; certificates are loaded and checked once, when it is added."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Self, cast

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from paynotify import AccountSettings
from paynotify_unionpay._api_signing import SigningKey, load_signing_pfx
from paynotify_unionpay._certs import (
    TEST_CN_ORG,
    UNIONPAY_CN_ORG,
    Certificate,
    Environment,
    TrustChain,
    bundled_pem,
    load_certificate,
)

__all__ = ["BASE_URLS", "FILE_URLS", "UnionPaySettings"]

BASE_URLS: dict[str, str] = {
    "production": "https://gateway.95516.com",
    "test": "https://gateway.test.95516.com",
}
"""UnionPay's gateway per environment; queries POST to `{base_url}/gateway/api/queryTrans.do`."""
FILE_URLS: dict[str, str] = {
    "production": "https://filedownload.95516.com/",
    "test": "https://filedownload.test.95516.com/",
}
"""UnionPay's file transfer endpoint (文件传输类交易, the daily bill) per environment: POSTed as is."""

_Loc = tuple[str | int, ...]
_CN_ORGS: dict[str, frozenset[str]] = {
    "production": frozenset({UNIONPAY_CN_ORG}),
    "test": frozenset({UNIONPAY_CN_ORG, TEST_CN_ORG}),
}


class UnionPaySettings(AccountSettings):
    """One UnionPay (银联 全渠道) merchant.

    notifier.add_account("shop", "unionpay", mer_id="777290058167151")          # production
    notifier.add_account("shop", "unionpay", mer_id="777290058167151", environment="test")

    5.1.0 messages carry their signing certificate, trusted through UnionPay's CFCA middle and root
    certificates of `environment` (shipped with this package; `root_cert` / `middle_cert` replace
    them). 5.0.0 messages name theirs by `certId`: give UnionPay's verify certificates
    (acp_prod_verify_sign.cer) as `verify_certs`; without them 5.0.0 messages are refused.

    Queries (queryTrans.do) are signed with the merchant's signing certificate: `signing_pfx` (the
    .pfx UnionPay issued, acp_prod_sign.pfx: a path, or its base64) and `signing_pfx_password`.
    Without them the account receives notifications as before.
    """

    mer_id: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")
    """The merchant number (商户号, merId); every notification must carry it."""
    environment: Environment = "production"
    """`production`, or `test` (UnionPay's test environment): which CFCA chain is trusted, and
    whether a test signing certificate's CN (`00040000:SIGN`) is accepted."""
    root_cert: str | Path | None = Field(default=None, repr=False)
    """Replaces the environment's root certificate (acp_*_root.cer): PEM text or a path."""
    middle_cert: str | Path | None = Field(default=None, repr=False)
    """Replaces the environment's middle certificate (acp_*_middle.cer): PEM text or a path."""
    verify_certs: str | Path | list[str | Path] = Field(default_factory=list, repr=False)
    """Certificates that verify 5.0.0 messages, matched by certId (the decimal serial): PEM text or
    paths. Configuration trusts them: no chain, CN or expiry check."""

    signing_pfx: str | Path | None = Field(default=None, repr=False)
    """The merchant's signing certificate with its private key (签名证书, .pfx): a path, or base64."""
    signing_pfx_password: SecretStr | None = Field(default=None, repr=False)
    """The .pfx's password."""
    base_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    """UnionPay's gateway; by default the environment's (`BASE_URLS`), another for the emulator."""
    file_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    """UnionPay's file transfer endpoint (bills); by default the environment's (`FILE_URLS`)."""

    _chain: TrustChain | None = PrivateAttr(default=None)
    _signing: SigningKey | None = PrivateAttr(default=None)
    _verify: Mapping[str, Certificate] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _load_certs(self) -> Self:
        problems: list[tuple[_Loc, str]] = []
        root = self._anchor("root_cert", self.root_cert, "root", problems)
        middle = self._anchor("middle_cert", self.middle_cert, "middle", problems)
        verify = self._verify_certificates(problems)
        signing = self._signing_key(problems)
        if root is not None and middle is not None:
            try:
                self._chain = TrustChain.build(self.environment, root, middle, _CN_ORGS[self.environment])
            except ValueError as exc:
                where = "middle_cert" if self.middle_cert is not None else "root_cert"
                problems.append(((where,), str(exc)))
        if problems:
            # A ValidationError (not a ValueError) keeps each problem's own location, list index included.
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("unionpay_certs", "{problem}", {"problem": message}),
                        loc=loc,
                        input="<hidden>",
                    )
                    for loc, message in problems
                ],
            )
        self._verify = MappingProxyType(verify)
        self._signing = signing
        return self

    def _signing_key(self, problems: list[tuple[_Loc, str]]) -> SigningKey | None:
        if self.signing_pfx is None:
            if self.signing_pfx_password is not None:
                problems.append((("signing_pfx",), "is missing: signing_pfx_password is set without it"))
            return None
        password = self.signing_pfx_password.get_secret_value() if self.signing_pfx_password else ""
        try:
            return load_signing_pfx(self.signing_pfx, password)
        except ValueError as exc:
            problems.append((("signing_pfx",), f"this signing certificate {exc}"))
            return None

    def _anchor(
        self,
        name: str,
        value: str | Path | None,
        which: Literal["root", "middle"],
        problems: list[tuple[_Loc, str]],
    ) -> Certificate | None:
        try:
            return load_certificate(bundled_pem(self.environment, which) if value is None else value)
        except ValueError as exc:
            problems.append(((name,), f"this {which} certificate {exc}"))
            return None

    def _verify_certificates(self, problems: list[tuple[_Loc, str]]) -> dict[str, Certificate]:
        value = self.verify_certs
        items: list[tuple[_Loc, str | Path]] = (
            [(("verify_certs", i), v) for i, v in enumerate(value)]
            if isinstance(value, list)
            else [(("verify_certs",), value)]
        )
        by_id: dict[str, Certificate] = {}
        for loc, item in items:
            try:
                certificate = load_certificate(item)
            except ValueError as exc:
                problems.append((loc, f"this certificate {exc}"))
                continue
            known = by_id.setdefault(certificate.serial, certificate)
            if known.key.public_numbers() != certificate.key.public_numbers():
                problems.append((loc, f"two different certificates have certId {certificate.serial}"))
        return by_id

    @property
    def trust_chain(self) -> TrustChain:
        """The middle and root certificates 5.1.0 signing certificates must chain to, loaded."""
        return cast(TrustChain, self._loaded("_chain"))

    @property
    def verify_certificates(self) -> Mapping[str, Certificate]:
        """The 5.0.0 verify certificates by certId (decimal serial); empty when none is configured."""
        return cast(Mapping[str, Certificate], self._loaded("_verify"))

    @property
    def signing(self) -> SigningKey | None:
        """The merchant's signing key and its certId, loaded from the .pfx; None without one."""
        return cast("SigningKey | None", self._loaded("_signing"))

    @property
    def api_base_url(self) -> str:
        """Where queries go: `base_url`, or the environment's gateway."""
        return self.base_url or BASE_URLS[self.environment]

    @property
    def file_transfer_url(self) -> str:
        """Where bill requests go: `file_url`, or the environment's file transfer endpoint."""
        return self.file_url or FILE_URLS[self.environment]

    def expected_merchant_id(self) -> str:
        return self.mer_id
