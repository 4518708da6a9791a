"""The keys WeChat Pay API v3 signs notifications with, and how one is picked for a notification.

Two kinds, and an account may trust both at once (WeChat Pay signs with either, at random, for
up to 7 days while a merchant migrates from platform certificates to the public key):

- a platform certificate (平台证书): its id is the certificate's serial number, upper-case hex
  as WeChat Pay's SDKs print it; the `Wechatpay-Serial` header is matched case-insensitively.
- a WeChat Pay public key (微信支付公钥): its id is the `PUB_KEY_ID_...` the merchant platform
  shows, matched exactly. It is a name, never a number: it is not parsed as hex.

Certificates' validity dates are not checked per notification: a key is trusted until it is
removed from the account (see the rotation how-to in docs/providers/wechatpay-v3.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = [
    "PUBLIC_KEY_ID_PREFIX",
    "Keyring",
    "V3Key",
    "certificate_serial",
    "load_platform_certificates",
    "load_public_key",
]

PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
_PEM_LABEL = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_PRIVATE = "a private key (your merchant key?); this setting takes WeChat Pay's"

KeyKind = Literal["platform certificate", "public key"]


@dataclass(frozen=True, slots=True)
class V3Key:
    """One trusted WeChat Pay key; `key_id` (serial or PUB_KEY_ID) names it in logs and errors."""

    key_id: str
    kind: KeyKind
    key: RSAPublicKey = field(repr=False)
    size_bytes: int = field(init=False, repr=False, compare=False)
    """The size of its signatures; read for every notification, so computed once (key_size calls
    into the backend)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "size_bytes", (self.key.key_size + 7) // 8)


def certificate_serial(certificate: x509.Certificate) -> str:
    """The serial as WeChat Pay sends it in `Wechatpay-Serial`: upper-case hex, no leading zeros."""
    return format(certificate.serial_number, "X")


def _labels(text: str) -> list[str]:
    return _PEM_LABEL.findall(text)


def _rsa(key: object, what: str) -> RSAPublicKey:
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"holds a {type(key).__name__}, not an RSA key; WeChat Pay API v3 signs with RSA")
    if key.key_size < 2048:
        raise ValueError(f"holds a {key.key_size}-bit RSA key; WeChat Pay's {what} is RSA 2048 or larger")
    return key


def load_platform_certificates(text: str) -> list[V3Key]:
    """Every certificate in one PEM text (one certificate, or several concatenated)."""
    labels = _labels(text)
    if any("PRIVATE" in label for label in labels):
        raise ValueError(f"is {_PRIVATE} platform certificate (平台证书)")
    if labels and "CERTIFICATE" not in labels:
        raise ValueError(
            f"is a PEM {labels[0]}, not a certificate; a WeChat Pay public key goes in public_key "
            "(with its public_key_id)"
        )
    if not labels:
        raise ValueError("is not PEM (expected -----BEGIN CERTIFICATE-----)")
    try:
        certificates = x509.load_pem_x509_certificates(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise ValueError("is a PEM CERTIFICATE that cannot be read (damaged or truncated?)") from None
    return [
        V3Key(certificate_serial(c), "platform certificate", _rsa(c.public_key(), "platform certificate"))
        for c in certificates
    ]


def load_public_key(key_id: str, text: str) -> V3Key:
    """WeChat Pay's public key (PEM `PUBLIC KEY`), named by its PUB_KEY_ID."""
    labels = _labels(text)
    if any("PRIVATE" in label for label in labels):
        raise ValueError(f"is {_PRIVATE} public key (微信支付公钥)")
    if "CERTIFICATE" in labels:
        raise ValueError("is a certificate; platform certificates go in platform_certificates")
    if labels[:1] != ["PUBLIC KEY"]:
        raise ValueError("is not a PEM public key (expected -----BEGIN PUBLIC KEY-----)")
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise ValueError("is a PEM PUBLIC KEY that cannot be read (damaged or truncated?)") from None
    return V3Key(key_id, "public key", _rsa(key, "public key"))


class Keyring:
    """An account's trusted keys, looked up by the `Wechatpay-Serial` header.

    A PUB_KEY_ID is compared exactly; any other value is compared to the certificate serials
    without regard to case. Nothing is converted to a number.
    """

    __slots__ = ("_by_serial", "_public_keys")

    def __init__(self, keys: Iterable[V3Key]) -> None:
        self._public_keys: dict[str, V3Key] = {}
        self._by_serial: dict[str, V3Key] = {}
        for key in keys:
            if key.kind == "public key":
                self._public_keys[key.key_id] = key
            else:
                self._by_serial[key.key_id.upper()] = key

    def find(self, serial: str) -> V3Key | None:
        return self._public_keys.get(serial) or self._by_serial.get(serial.upper())

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every trusted key id: public key ids, then certificate serials."""
        return (*self._public_keys, *(k.key_id for k in self._by_serial.values()))

    def __len__(self) -> int:
        return len(self._public_keys) + len(self._by_serial)
