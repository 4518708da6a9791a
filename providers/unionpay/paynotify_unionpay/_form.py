"""UnionPay's x-www-form-urlencoded fields: decoded exactly once, to bytes; text only after verifying.

The signature covers the values in the bytes of the message's `encoding` (utf-8 or gbk), which is
exactly what one percent-decoding of the body gives: verification reads `raw`, and `text()` turns
it into str afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paynotify import InvalidContent, MalformedNotification, percent_decode

__all__ = ["ENCODINGS", "Form", "decode_form", "python_encoding"]

# UnionPay's `encoding` values -> Python codecs; UnionPay documents UTF-8 and GBK only.
ENCODINGS = {"utf-8": "utf-8", "gbk": "gbk"}

# unquote() leaves a stray "%" as it is; UnionPay never sends one, so it means a mangled body.
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
# UnionPay's names are camelCase ASCII; anything printable is let through for the signature to judge.
_NAME = re.compile(rb"[\x21-\x7e]+")


def python_encoding(name: str) -> str:
    """The codec for a UnionPay `encoding` value (any case); ValueError for one UnionPay does not use."""
    codec = ENCODINGS.get(name.strip().lower())
    if codec is None:
        raise ValueError(f"encoding {name[:20]!r} is not one of {', '.join(sorted(ENCODINGS))}")
    return codec


def _show(name: bytes) -> str:
    return repr(name[:40].decode("ascii", "backslashreplace"))


@dataclass(frozen=True, slots=True)
class Form:
    """One decoded form: `raw` is what the signature covers, `encoding` the codec that reads it."""

    encoding: str
    raw: dict[bytes, bytes]

    def text(self) -> dict[str, str]:
        """The fields as str, in the message's encoding. Called on verified fields only, so a value
        that is not text in that encoding raises InvalidContent naming it, with every field (the bad
        bytes as `\\xNN`) as `raw`: verified content is kept, even when it cannot be read."""
        fields = {}
        for key, value in self.raw.items():
            try:
                fields[key.decode("ascii")] = value.decode(self.encoding)
            except UnicodeDecodeError:
                raw = {
                    k.decode("ascii"): v.decode(self.encoding, "backslashreplace")
                    for k, v in self.raw.items()
                }
                raise InvalidContent(
                    f"verified, but field {_show(key)} is not valid {self.encoding}", raw=raw
                ) from None
        return fields


def decode_form(data: bytes) -> Form:
    """Split and percent-decode `data` once (`+` is a space, `%XX` a byte); MalformedNotification
    when it is not a UnionPay form: no fields, a repeated, empty or non-ASCII name, no known encoding."""
    if _BAD_ESCAPE.search(data):
        raise MalformedNotification("bad percent-encoding: '%' not followed by two hex digits")
    # `+` is replaced before splitting: it is never a separator, and a real `+` arrives as %2B.
    parts = [part.partition(b"=") for part in data.replace(b"+", b" ").split(b"&") if part]
    if not parts:
        raise MalformedNotification("no form fields (a UnionPay notification is x-www-form-urlencoded)")
    raw: dict[bytes, bytes] = {}
    for key, _, value in parts:
        name = percent_decode(key)
        if not _NAME.fullmatch(name):
            raise MalformedNotification(f"a field name is empty or not printable ASCII: {_show(name)}")
        if name in raw:
            raise MalformedNotification(f"field {_show(name)} appears more than once")
        raw[name] = percent_decode(value)
    declared = raw.get(b"encoding")
    if declared is None:
        raise MalformedNotification("no `encoding` field (UnionPay always sends utf-8 or gbk)")
    try:
        encoding = python_encoding(declared.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedNotification(
            f"unsupported encoding {_show(declared)} (expected one of {', '.join(sorted(ENCODINGS))})"
        ) from None
    return Form(encoding, raw)
