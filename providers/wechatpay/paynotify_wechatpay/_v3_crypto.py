"""The encrypted `resource` of a WeChat Pay API v3 notification: AEAD_AES_256_GCM.

key = the APIv3 key (APIv3密钥), its 32 bytes as they are; nonce = the 12-character `nonce`
string's UTF-8 bytes (it is not base64); associated data = `associated_data` as UTF-8 (may be
empty; absent is treated as empty, which the GCM tag still authenticates); `ciphertext` =
base64(ciphertext || 16-byte tag). Decryption happens only after the signature verified: a tag
that does not match then means the account's APIv3 key is not the one WeChat Pay used.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paynotify import MalformedNotification, VerificationError
from paynotify_wechatpay._json import loads

__all__ = ["ALGORITHM", "NONCE_LENGTH", "decrypt_resource", "encrypt_resource", "resource_json"]

ALGORITHM = "AEAD_AES_256_GCM"
NONCE_LENGTH = 12
_TAG_LENGTH = 16


def encrypt_resource(
    plaintext: bytes, key: bytes, *, nonce: str, associated_data: str, original_type: str
) -> dict[str, str]:
    """The `resource` object WeChat Pay sends for `plaintext`; the inverse of `decrypt_resource()`."""
    sealed = AESGCM(key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return {
        "original_type": original_type,
        "algorithm": ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def _text(resource: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = resource.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise MalformedNotification(f"resource has no {name} (a non-empty string)")
    return value


def decrypt_resource(resource: Mapping[str, Any], key: bytes | AESGCM) -> bytes:
    """The plaintext of an encrypted `resource`; `key` is the APIv3 key, or an AESGCM made of it.

    Not the expected shape (algorithm, nonce, base64): MalformedNotification. A tag that does not
    match: VerificationError (the APIv3 key is wrong, or the resource was changed).
    """
    algorithm = _text(resource, "algorithm")
    if algorithm != ALGORITHM:
        raise MalformedNotification(f"resource algorithm {algorithm[:40]!r} is not {ALGORITHM}")
    nonce = _text(resource, "nonce").encode()
    if len(nonce) != NONCE_LENGTH:
        raise MalformedNotification(f"resource nonce is {len(nonce)} bytes, not {NONCE_LENGTH}")
    associated_data = _text(resource, "associated_data", required=False).encode()
    try:
        sealed = binascii.a2b_base64(_text(resource, "ciphertext").encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):
        raise MalformedNotification("resource ciphertext is not standard base64") from None
    if len(sealed) <= _TAG_LENGTH:
        raise MalformedNotification(f"resource ciphertext is {len(sealed)} bytes: no room for a GCM tag")
    try:
        aead = AESGCM(key) if isinstance(key, bytes) else key
        return aead.decrypt(nonce, sealed, associated_data)
    except InvalidTag:
        raise VerificationError(
            "resource does not decrypt with this account's apiv3_key (GCM tag mismatch): the APIv3 key "
            "(APIv3密钥) set in the merchant platform is not the configured one, or it was changed"
        ) from None


def resource_json(plaintext: bytes) -> dict[str, Any]:
    """The decrypted resource as a JSON object."""
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNotification("decrypted resource is not JSON (not UTF-8)") from None
    value = loads(text, "decrypted resource")
    if not isinstance(value, dict):
        raise MalformedNotification(f"decrypted resource is a JSON {type(value).__name__}, not an object")
    return value
