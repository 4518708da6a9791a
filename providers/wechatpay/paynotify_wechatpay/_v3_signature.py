"""The WeChat Pay API v3 notification signature: `sign()` beside `verify()`, over one message rule.

Message: `Wechatpay-Timestamp + "\\n" + Wechatpay-Nonce + "\\n" + body + "\\n"`, the body exactly as
received (never a re-serialised JSON). Signature: RSA PKCS#1 v1.5 with SHA-256, standard base64,
in `Wechatpay-Signature`. The key is the one `Wechatpay-Serial` names (see `_v3_keys`).

`verify()` checks, in this order, and refuses with a `VerificationError` that names the rule:
the four headers are present; `Wechatpay-Signature-Type` is absent or WECHATPAY2-SHA256-RSA2048;
the signature is not a `WECHATPAY/SIGNTEST/` probe; the timestamp is digits and the nonce
printable ASCII; the serial names a trusted key; the
timestamp is within the tolerance of now, in either direction (a replay window); the signature is
canonical base64 of the key's size and verifies. Nothing of the body is read before that.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from paynotify import VerificationError, canonical_b64decode
from paynotify_wechatpay._v3_keys import Keyring, V3Key

__all__ = [
    "HEADER_NONCE",
    "HEADER_SERIAL",
    "HEADER_SIGNATURE",
    "HEADER_SIGNATURE_TYPE",
    "HEADER_TIMESTAMP",
    "PROBE_PREFIX",
    "SIGNATURE_TYPE",
    "SignedHeaders",
    "message",
    "sign",
    "verify",
]

HEADER_TIMESTAMP = "wechatpay-timestamp"
HEADER_NONCE = "wechatpay-nonce"
HEADER_SIGNATURE = "wechatpay-signature"
HEADER_SERIAL = "wechatpay-serial"
HEADER_SIGNATURE_TYPE = "wechatpay-signature-type"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"

_REQUIRED = (HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SERIAL)
# Stateless and immutable: made once rather than on every notification.
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_TIMESTAMP_DIGITS = 12
_SHOWN_LENGTH = 64


def _shown(value: str) -> str:
    """A received (untrusted) value as it may appear in an error message: quoted and bounded."""
    return repr(value if len(value) <= _SHOWN_LENGTH else value[:_SHOWN_LENGTH] + "...")


class SignedHeaders(NamedTuple):
    """The signature headers of one notification (names as in `InboundRequest`: lower-case).

    A NamedTuple, immutable like a frozen dataclass: one is made for every notification, in 0.16 us
    where a frozen dataclass's five object.__setattr__ calls take 0.4 us.
    """

    timestamp: str
    nonce: str
    signature: str
    serial: str
    signature_type: str | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> SignedHeaders:
        # Each header read once; the list of missing ones is made only when one is missing.
        timestamp = headers.get(HEADER_TIMESTAMP)
        nonce = headers.get(HEADER_NONCE)
        signature = headers.get(HEADER_SIGNATURE)
        serial = headers.get(HEADER_SERIAL)
        if not (timestamp and nonce and signature and serial):
            missing = [name for name in _REQUIRED if not headers.get(name)]
            names = ", ".join(_title(name) for name in missing)
            raise VerificationError(f"notification has no {names} header; unsigned notifications are refused")
        return cls(timestamp, nonce, signature, serial, headers.get(HEADER_SIGNATURE_TYPE))


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The exact bytes that are signed. Header values are ASCII (the caller has checked)."""
    # One join, one copy of the body (each + copied it again).
    return b"\n".join((timestamp.encode("ascii"), nonce.encode("ascii"), body, b""))


def sign(private_key: RSAPrivateKey, timestamp: str, nonce: str, body: bytes) -> str:
    """The base64 `Wechatpay-Signature` WeChat Pay would send; the inverse of `verify()`."""
    signature = private_key.sign(message(timestamp, nonce, body), _PKCS1, _SHA256)
    return base64.b64encode(signature).decode("ascii")


def verify(headers: SignedHeaders, body: bytes, keyring: Keyring, *, now: float, tolerance: int) -> V3Key:
    """The trusted key that verifies this notification; VerificationError naming the rule if none."""
    _check_signature_type(headers.signature_type)
    if headers.signature.startswith(PROBE_PREFIX):
        raise VerificationError(
            "Wechatpay-Signature is a WECHATPAY/SIGNTEST/ probe: WeChat Pay checking that "
            "unverified notifications are refused (they are)"
        )
    _check_formats(headers)
    key = keyring.find(headers.serial)
    if key is None:
        trusted = ", ".join(keyring.key_ids) or "none"
        raise VerificationError(
            f"Wechatpay-Serial {_shown(headers.serial)} names no trusted key (configured: {trusted}); "
            "add the new platform certificate or public key to the account (see the rotation how-to)"
        )
    _check_window(headers, now, tolerance, key)
    raw = _decode(headers.signature, key)
    signed = message(headers.timestamp, headers.nonce, body)
    try:
        key.key.verify(raw, signed, _PKCS1, _SHA256)
    except InvalidSignature:
        raise VerificationError(
            f"signature does not verify with {key.kind} {key.key_id}: a changed body or header, "
            "a re-serialised body, or a forgery"
        ) from None
    return key


def _check_signature_type(signature_type: str | None) -> None:
    if signature_type is not None and signature_type != SIGNATURE_TYPE:
        raise VerificationError(
            f"Wechatpay-Signature-Type {_shown(signature_type)} is not supported; "
            f"only {SIGNATURE_TYPE} (RSA with SHA-256) is"
        )


def _check_formats(headers: SignedHeaders) -> None:
    """Timestamp and nonce must be what WeChat Pay sends (so the signed message is unambiguous)."""
    timestamp = headers.timestamp
    # [0-9]{1,12} without the regex: isdigit() of an ASCII str is exactly 0-9.
    if not (0 < len(timestamp) <= _TIMESTAMP_DIGITS and timestamp.isascii() and timestamp.isdigit()):
        raise VerificationError(f"Wechatpay-Timestamp {_shown(headers.timestamp)} is not unix seconds")
    if not headers.nonce.isascii() or not headers.nonce.isprintable():
        raise VerificationError("Wechatpay-Nonce is not printable ASCII")


def _check_window(headers: SignedHeaders, now: float, tolerance: int, key: V3Key) -> None:
    """Refuse a timestamp more than `tolerance` seconds from now, in either direction."""
    skew = now - int(headers.timestamp)
    if abs(skew) > tolerance:
        direction = "old" if skew > 0 else "in the future"
        raise VerificationError(
            f"Wechatpay-Timestamp {headers.timestamp} is {abs(skew):.0f} s {direction}, outside the "
            f"{tolerance} s replay window (signed by {key.kind} {key.key_id}; is this server's clock right?)"
        )


def _decode(signature: str, key: V3Key) -> bytes:
    """The raw signature: canonical padded base64 only, of exactly the key's size."""
    raw = canonical_b64decode(signature)
    if raw is None:
        raise VerificationError("Wechatpay-Signature is not valid base64")
    if len(raw) != key.size_bytes:
        raise VerificationError(
            f"Wechatpay-Signature is {len(raw)} bytes; {key.kind} {key.key_id} signs {key.size_bytes} bytes"
        )
    return raw
