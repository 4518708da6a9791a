"""Alipay's V1 signature rule (rsaCheckV1): the signed content, `sign()` and `verify()`, key loading.

Content: the decoded form minus `sign` and `sign_type`, minus empty values, keys sorted by byte
order, `k=v` joined with `&`, in the bytes of the notification's charset. Signature: RSA PKCS#1 v1.5
over it, SHA-256 for RSA2 and SHA-1 for RSA, standard base64. The hash is the account's choice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from paynotify import VerificationError, canonical_b64decode

__all__ = [
    "WRONG_CERT_HINT",
    "WRONG_KEY_HINT",
    "AlipayPublicKey",
    "SignRule",
    "SignType",
    "load_public_key",
    "sign",
    "sign_content",
    "verify",
]

SignType = Literal["RSA2", "RSA"]

WRONG_KEY_HINT = (
    "check that alipay_public_key is Alipay's public key for this app (支付宝公钥), "
    "not your application's public key (应用公钥)"
)
WRONG_CERT_HINT = (
    "check that alipay_public_cert is Alipay's public key certificate (alipayCertPublicKey_RSA2.crt), "
    "not your application's certificate (appCertPublicKey_<app_id>.crt) or the root (alipayRootCert.crt)"
)

# Stateless and immutable: made once rather than on every notification.
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "RSA2": hashes.SHA256(),
    "RSA": hashes.SHA1(),  # noqa: S303  # legacy RSA sign_type is SHA-1 by Alipay's definition
}
_PKCS1 = padding.PKCS1v15()
_HASH_NAMES = {"RSA2": "SHA-256", "RSA": "SHA-1"}
_UNSIGNED = frozenset({b"sign", b"sign_type"})
_UNSIGNED_V2 = frozenset({b"sign"})
SignRule = Literal["V1", "V2"]
_PEM_LABEL = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_NOT_PRIVATE = "this setting takes Alipay's public key for this app (支付宝公钥), never a private key"


@dataclass(frozen=True, slots=True)
class AlipayPublicKey:
    """One trusted Alipay key of an account, named in logs and results by `key_id`.

    From `alipay_public_key`: key_id is 8 hex of the sha256 of the key's DER. From
    `alipay_public_cert` (certificate mode): key_id is the certificate's Alipay SN, also in `cert_sn`.
    """

    key: RSAPublicKey = field(repr=False)
    key_id: str
    from_certificate: bool = False
    cert_sn: str | None = None

    @property
    def size_bytes(self) -> int:
        return (self.key.key_size + 7) // 8


def sign_content(fields: Mapping[bytes, bytes], rule: SignRule = "V1") -> bytes:
    """The signed content of decoded form fields, as bytes in the notification's charset: V1
    (rsaCheckV1, trade notifications and returns) leaves out `sign` and `sign_type`, V2 (rsaCheckV2,
    open-platform messages) only `sign`."""
    unsigned = _UNSIGNED if rule == "V1" else _UNSIGNED_V2
    signed = sorted(fields.items())
    return b"&".join([key + b"=" + value for key, value in signed if value and key and key not in unsigned])


def sign(content: bytes, private_key: RSAPrivateKey, sign_type: SignType = "RSA2") -> str:
    """The base64 `sign` Alipay would send for `content`; the inverse of `verify()`."""
    signature = private_key.sign(content, _PKCS1, _HASHES[sign_type])
    return base64.b64encode(signature).decode("ascii")


def verify(
    content: bytes, signature: str, keys: Sequence[AlipayPublicKey], sign_type: SignType
) -> AlipayPublicKey:
    """The key that verifies `signature` over `content`; VerificationError when none does.

    Every key is tried: during a rotation the old and the new Alipay key are both trusted.
    """
    raw = canonical_b64decode(signature)
    if raw is None:
        raise VerificationError("sign is not valid base64")
    for candidate in keys:
        if len(raw) != candidate.size_bytes:
            continue  # cryptography would refuse it too; skipping keeps the reason explicit below
        try:
            candidate.key.verify(raw, content, _PKCS1, _HASHES[sign_type])
        except InvalidSignature:
            continue
        return candidate
    tried = ", ".join(k.key_id for k in keys) or "none"
    sizes = sorted({k.size_bytes for k in keys})
    length = "" if len(raw) in sizes else f"; sign is {len(raw)} bytes, the keys expect {sizes}"
    raise VerificationError(
        f"no configured key verifies the {sign_type} ({_HASH_NAMES[sign_type]}) signature "
        f"(keys tried: {tried}){length}; {_hint(keys)}"
    )


def _hint(keys: Sequence[AlipayPublicKey]) -> str:
    # The usual mistake differs by mode: the app's own key in key mode, the app's own cert in cert mode.
    certs = any(k.cert_sn for k in keys)
    plain = not keys or not all(k.cert_sn for k in keys)
    return "; ".join([WRONG_KEY_HINT] * plain + [WRONG_CERT_HINT] * certs)


def _key_id(key: RSAPublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:8]


def _pem(kind: str, data: bytes) -> tuple[object, bool]:
    try:
        if kind == "CERTIFICATE":
            return x509.load_pem_x509_certificate(data).public_key(), True
        return serialization.load_pem_public_key(data), False
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"is a PEM {kind} that cannot be read (damaged or truncated?)") from None


def _der(der: bytes) -> tuple[object, bool]:
    try:
        return serialization.load_der_public_key(der), False
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:
        return x509.load_der_x509_certificate(der).public_key(), True
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:
        serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("is base64 but not a public key or certificate (damaged or truncated?)") from None
    raise ValueError(f"is a private key in base64; {_NOT_PRIVATE}")


def load_public_key(text: str) -> AlipayPublicKey:
    """Load a PEM public key, a PEM certificate (its key), or the bare base64 of Alipay's console.

    Raises ValueError with a message that never repeats the input.
    """
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    label = _PEM_LABEL.search(text)
    if label is not None:
        kind = label.group(1)
        if "PRIVATE KEY" in kind:
            raise ValueError(f"is a PEM private key; {_NOT_PRIVATE}")
        if kind not in ("PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE"):
            raise ValueError(f"is a PEM {kind}; expected a PUBLIC KEY or a CERTIFICATE")
        # From the first BEGIN line, lines stripped: a file's leading text or a TOML indent is harmless.
        pem = "\n".join(line.strip() for line in text[label.start() :].splitlines())
        key, from_certificate = _pem(kind, pem.encode("ascii", "replace"))
    else:
        try:
            der = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "is neither PEM nor base64: paste the PEM, or the one-line key Alipay's console shows"
            ) from None
        key, from_certificate = _der(der)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("is not an RSA key; Alipay signs notifications with RSA (RSA2 or RSA)")
    return AlipayPublicKey(key, _key_id(key), from_certificate)
