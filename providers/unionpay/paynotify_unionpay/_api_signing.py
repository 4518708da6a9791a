"""The merchant's UnionPay signing certificate (签名证书, a .pfx): the key that signs its requests.

UnionPay issues it as PKCS#12 (acp_prod_sign.pfx, acp_test_sign.pfx) with a password. `certId`,
sent with every request, is the certificate's serial number in decimal; requests are signed with
the notification rule (`_signature`), 5.1.0: SHA-256 of the sign string, RSA SHA-256.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import pkcs12

__all__ = ["SigningKey", "load_signing_pfx", "pfx_bytes"]

_MAX_PFX = 64 * 1024


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The private key of the merchant's signing certificate and its certId (decimal serial)."""

    cert_id: str
    key: RSAPrivateKey = field(repr=False)


def pfx_bytes(value: str | Path) -> bytes:
    """A path to the .pfx, or its base64 (for `signing_pfx_env`): a value naming a file is a path."""
    if isinstance(value, str):
        text = value.strip()
        candidate = Path(text).expanduser() if text and "\n" not in text and len(text) < 4096 else None
        if candidate is None or not candidate.is_file():
            try:
                return base64.b64decode("".join(text.split()), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("is neither a readable .pfx file path nor base64 of a .pfx") from None
        value = candidate
    try:
        data = value.expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot be read: {str(value)!r}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > _MAX_PFX:
        raise ValueError(f"is {len(data)} bytes: not a signing certificate .pfx")
    return data


def load_signing_pfx(value: str | Path, password: str) -> SigningKey:
    """The signing key in a .pfx; ValueError naming the problem (never the password or the key)."""
    data = pfx_bytes(value)
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(data, password.encode("utf-8") or None)
    except ValueError:
        raise ValueError("cannot be opened: not a PKCS#12 .pfx, or a wrong signing_pfx_password") from None
    if certificate is None or key is None:
        raise ValueError("holds no certificate with its private key")
    if not isinstance(key, RSAPrivateKey) or key.key_size < 2048:
        raise ValueError("holds no RSA key of 2048 bits or more (signMethod 01 signs with RSA)")
    return SigningKey(cert_id=str(certificate.serial_number), key=key)
