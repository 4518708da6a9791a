"""The WeChat Pay API v2 signature: `sign()` beside `verify()`, over one content rule.

Content: every field except `sign` whose value is not empty, sorted by key (ASCII order), joined as
`k=v` with `&`, values exactly as received (no URL encoding, no trimming), then `&key=API_KEY`;
UTF-8. MD5 of it, or HMAC-SHA256 of it keyed with the API key; upper-case hex. `sign_type`, when
the message carries it, is signed like any other field. The algorithm always comes from the
account's configuration: a message whose `sign_type` names another one is refused, never obeyed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Literal

from paynotify import VerificationError

__all__ = ["SIGN_TYPES", "SignType", "sign", "sign_content", "verify"]

SignType = Literal["MD5", "HMAC-SHA256"]
SIGN_TYPES: tuple[SignType, ...] = ("MD5", "HMAC-SHA256")

_HEX_LENGTH = {"MD5": 32, "HMAC-SHA256": 64}
_HEX = re.compile(r"[0-9A-Fa-f]+")


def sign_content(fields: Mapping[str, str], api_key: bytes) -> bytes:
    """The exact bytes that are hashed: `a=1&b=2&key=API_KEY`."""
    pairs = [f"{name}={value}".encode() for name, value in sorted(fields.items()) if name != "sign" and value]
    pairs.append(b"key=" + api_key)
    return b"&".join(pairs)


def sign(fields: Mapping[str, str], api_key: bytes, sign_type: SignType) -> str:
    """The upper-case hex `sign` WeChat Pay puts on `fields` (a `sign` among them is ignored)."""
    content = sign_content(fields, api_key)
    if sign_type == "MD5":
        # MD5 is what the protocol mandates for this sign type; HMAC-SHA256 is the other choice.
        return hashlib.md5(content).hexdigest().upper()  # noqa: S324
    if sign_type == "HMAC-SHA256":
        return hmac.new(api_key, content, hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown WeChat Pay v2 sign_type {sign_type!r}; expected one of {SIGN_TYPES}")


def verify(
    fields: Mapping[str, str], api_key: bytes, sign_type: SignType, *, what: str = "notification"
) -> None:
    """Raise VerificationError unless `fields["sign"]` is the `sign_type` signature of `fields`.

    Hex case is not significant (the received value is upper-cased). Error messages never include
    the expected signature: that would make the error a signing oracle. `what` names the message
    in them (a notification, or a query answer).
    """
    claimed = fields.get("sign_type", "")
    if claimed and claimed != sign_type:
        raise VerificationError(
            f"{what} says sign_type={claimed!r} but the account is configured for {sign_type!r}; "
            "the algorithm is never taken from the message"
        )
    received = fields.get("sign")
    if received is None:
        raise VerificationError(f"{what} has no sign; unsigned messages are refused")
    expected_length = _HEX_LENGTH[sign_type]
    if not received:
        raise VerificationError(f"{what} has an empty sign; unsigned messages are refused")
    if len(received) != expected_length or not _HEX.fullmatch(received):
        problem = "non-hex characters" if len(received) == expected_length else f"{len(received)} characters"
        raise VerificationError(
            f"sign is not a {sign_type} signature ({expected_length} hex digits expected, got {problem})"
        )
    expected = sign(fields, api_key, sign_type)
    if not hmac.compare_digest(received.upper().encode("ascii"), expected.encode("ascii")):
        raise VerificationError(
            f"{sign_type} sign does not match: a changed field, another API key, or a forgery"
        )
