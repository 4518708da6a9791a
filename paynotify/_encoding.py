"""Signature encodings providers share."""

from __future__ import annotations

import binascii

__all__ = ["canonical_b64decode"]


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
