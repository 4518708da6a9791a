"""Signature encodings providers share."""

from __future__ import annotations

import base64
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
    return raw if raw and base64.b64encode(raw) == encoded else None
