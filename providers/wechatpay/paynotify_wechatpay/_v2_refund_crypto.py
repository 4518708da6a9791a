"""`req_info` of a WeChat Pay v2 refund notification: base64, AES-256-ECB, PKCS#7.

The key is the lower-case hex MD5 of the API key: 32 ASCII bytes, used as an AES-256 key. The
notification carries no signature, and decryption is no proof of authenticity: ECB encrypts each
16-byte block alone and nothing authenticates the whole, so blocks of genuine ciphertexts can be
reordered and mixed into one that decrypts cleanly. Strict padding (every pad byte) and a `<root>`
document only show the blocks came from this account's key; the provider checks the content, and a
merchant confirms refunds with WeChat Pay (docs/providers/wechatpay-v2.md).

ECB is what the protocol mandates for this field; it is not a choice made here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from paynotify import MalformedNotification, VerificationError

__all__ = ["BLOCK", "decrypt_req_info", "encrypt_req_info", "pkcs7_pad", "pkcs7_unpad", "refund_key"]

BLOCK = 16


def refund_key(api_key: bytes) -> bytes:
    """The AES-256 key: md5(API key) as 32 lower-case hex ASCII bytes."""
    return hashlib.md5(api_key).hexdigest().encode("ascii")  # noqa: S324 - the protocol's key derivation


def pkcs7_pad(data: bytes) -> bytes:
    pad = BLOCK - len(data) % BLOCK
    return data + bytes([pad]) * pad


def pkcs7_unpad(data: bytes) -> bytes:
    """Strict PKCS#7: whole blocks, a pad length of 1..16, and every pad byte equal to it."""
    if not data or len(data) % BLOCK:
        raise ValueError(f"{len(data)} bytes is not a whole number of {BLOCK}-byte blocks")
    pad = data[-1]
    if not 1 <= pad <= BLOCK or data[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad PKCS#7 padding")
    return data[:-pad]


def _ecb(key: bytes) -> Cipher[modes.ECB]:
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 - mandated by WeChat Pay v2


def encrypt_req_info(plaintext: bytes, key: bytes) -> str:
    """What WeChat Pay does to the `<root>` document: PKCS#7, AES-256-ECB, base64."""
    encryptor = _ecb(key).encryptor()
    return base64.b64encode(encryptor.update(pkcs7_pad(plaintext)) + encryptor.finalize()).decode("ascii")


def decrypt_req_info(req_info: str, key: bytes) -> bytes:
    """The plaintext of `req_info`.

    Not base64, or not whole AES blocks: MalformedNotification (no key could decrypt it).
    Bad padding: VerificationError (it was not encrypted with this account's key).
    """
    try:
        ciphertext = base64.b64decode(req_info.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise MalformedNotification("req_info is not standard base64") from None
    if not ciphertext or len(ciphertext) % BLOCK:
        raise MalformedNotification(
            f"req_info is {len(ciphertext)} bytes, not a whole number of AES blocks ({BLOCK} bytes)"
        )
    decryptor = _ecb(key).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    try:
        return pkcs7_unpad(padded)
    except ValueError:
        raise VerificationError(
            "req_info does not decrypt under this account's API key (bad PKCS#7 padding): "
            "another merchant's key, a changed API key, or a forgery"
        ) from None
