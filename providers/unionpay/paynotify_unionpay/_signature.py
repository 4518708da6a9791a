"""UnionPay's signature rule, signMethod 01: the sign string, `sign()` and `verify()`.

Sign string: every field but `signature`, empty values kept, keys sorted, `k=v` joined with `&`,
values exactly as received (one form decode; `signPubKeyCert` with its CRLF), in the bytes of the
message's `encoding`. The signed message is the lower-case hex digest of that string (64 ASCII
bytes for 5.1.0's SHA-256, 40 for 5.0.0's SHA-1), signed again with RSA PKCS#1 v1.5 and the same
hash; `signature` is its standard base64.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from paynotify import VerificationError, canonical_b64decode
from paynotify_unionpay._certs import Certificate

__all__ = ["SIGN_METHOD", "VERSIONS", "Version", "sign", "sign_string", "signed_message", "verify"]

Version = Literal["5.1.0", "5.0.0"]
SIGN_METHOD = "01"
"""RSA with a certificate; 11 and 12 (a shared secret key, SHA-256 / SM3) are not supported."""


@dataclass(frozen=True, slots=True)
class _Scheme:
    digest: Callable[[bytes], str]
    hash: hashes.HashAlgorithm
    hash_name: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=True).hexdigest()  # noqa: S324  # 5.0.0 is SHA-1 by UnionPay's definition


# Stateless and immutable: made once rather than on every notification.
VERSIONS: dict[str, _Scheme] = {
    "5.1.0": _Scheme(_sha256, hashes.SHA256(), "SHA-256"),
    "5.0.0": _Scheme(_sha1, hashes.SHA1(), "SHA-1"),  # noqa: S303
}
_PKCS1 = padding.PKCS1v15()


def sign_string(fields: Mapping[bytes, bytes]) -> bytes:
    """The sign string of decoded form fields (bytes in the message's encoding)."""
    return b"&".join([key + b"=" + value for key, value in sorted(fields.items()) if key != b"signature"])


def signed_message(content: bytes, version: Version) -> bytes:
    """What the RSA signature covers: the lower-case hex digest of the sign string, as ASCII."""
    return VERSIONS[version].digest(content).encode("ascii")


def sign(content: bytes, private_key: RSAPrivateKey, version: Version = "5.1.0") -> str:
    """The base64 `signature` UnionPay would send for the sign string `content`; the inverse of `verify()`."""
    scheme = VERSIONS[version]
    raw = private_key.sign(signed_message(content, version), _PKCS1, scheme.hash)
    return base64.b64encode(raw).decode("ascii")


def verify(content: bytes, signature: bytes, certificate: Certificate, version: Version) -> None:
    """Check `signature` (base64, as received) over the sign string `content` with `certificate`'s key.

    The hash is the version's (5.1.0: SHA-256, 5.0.0: SHA-1); VerificationError when it does not verify.
    """
    scheme = VERSIONS[version]
    raw = canonical_b64decode(signature.decode("ascii", "replace"))
    if raw is None:
        raise VerificationError("signature is not valid base64")
    if len(raw) != certificate.size_bytes:
        raise VerificationError(
            f"signature is {len(raw)} bytes; the key of certId {certificate.serial} signs "
            f"{certificate.size_bytes}"
        )
    try:
        certificate.key.verify(raw, signed_message(content, version), _PKCS1, scheme.hash)
    except InvalidSignature:
        raise VerificationError(
            f"the {version} signature ({scheme.hash_name}) does not verify with the key of "
            f"certId {certificate.serial} ({certificate.subject!r})"
        ) from None
