"""Signature encodings providers share."""

from __future__ import annotations

import binascii

__all__ = ["canonical_b64decode", "percent_decode"]


def percent_decode(text: bytes) -> bytes:
    """`%XX` -> the byte, exactly as urllib's unquote_to_bytes, but in C: binascii's
    quoted-printable decoder reads `=XX` so. Each literal `=` is written `=3D` first. The caller
    must have refused any `%` not followed by two hex digits (as form decoding does), so neither a
    soft line break nor a stray `=`, the only other things a2b_qp interprets, can arise.
    unquote_to_bytes, in Python, cost ~10 us of a notification's form.

    >>> percent_decode(b"a%20b%3D%2B=c")
    b'a b=+=c'
    """
    return binascii.a2b_qp(text.replace(b"=", b"=3D").replace(b"%", b"="))


def canonical_b64decode(text: str) -> bytes | None:
    """The bytes `text` encodes if it is canonical, padded, standard base64 (what providers send);
    None for anything else, empty included.

    binascii's strict mode alone still accepts excess padding and unused bits set; re-encoding
    and comparing refuses every spelling but one.

    >>> canonical_b64decode("AAE="), canonical_b64decode("AAF="), canonical_b64decode("AAE")
    (b'\\x00\\x01', None, None)
    """
    try:
        encoded = text.encode("ascii")
        raw = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw and binascii.b2a_base64(raw, newline=False) == encoded else None
