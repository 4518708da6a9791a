"""Alipay's x-www-form-urlencoded fields: decoded exactly once, to bytes, then text by `charset`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from paynotify import MalformedNotification, percent_decode

__all__ = ["CHARSETS", "Form", "decode_form", "python_charset"]

# Alipay's charset names -> Python codecs. gb2312 is a subset of gbk; decoding it as gbk loses nothing.
CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gbk"}

# unquote() leaves a stray "%" as it is; Alipay never sends one, so it means a mangled body.
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class Form:
    """One decoded form: `raw` is what the signature covers, `fields` the same as text."""

    charset: str
    raw: dict[bytes, bytes]
    fields: dict[str, str]


def python_charset(name: str) -> str:
    """The codec for an Alipay `charset` value; ValueError for one Alipay does not use."""
    codec = CHARSETS.get(name.strip().lower())
    if codec is None:
        raise ValueError(f"charset {name!r} is not one of {', '.join(sorted(CHARSETS))}")
    return codec


def _show(name: bytes) -> str:
    return repr(name[:40].decode("ascii", "backslashreplace"))


def _pairs(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """(name, "=" or "", value) per field, each decoded once: `+` is a space, `%XX` a byte.

    As urllib.parse.parse_qsl(keep_blank_values=True): a part without "=" is a blank value. `+`
    is replaced in the whole body before splitting: it is never a separator, and a real `+`
    arrives as %2B. Comprehensions rather than a loop: this runs for every field of every
    notification. `data` has passed `_BAD_ESCAPE`.
    """
    pairs = [part.partition(b"=") for part in data.replace(b"+", b" ").split(b"&") if part]
    if b"%" not in data:
        return pairs
    return [
        (percent_decode(k) if b"%" in k else k, sep, percent_decode(v) if b"%" in v else v)
        for k, sep, v in pairs
    ]


def decode_form(data: bytes) -> Form:
    """Split and percent-decode `data` once; raise MalformedNotification if it is not an Alipay form."""
    if _BAD_ESCAPE.search(data):
        raise MalformedNotification("bad percent-encoding: '%' not followed by two hex digits")
    # Decoded on bytes: the real charset is only known once the `charset` field has been read.
    pairs = _pairs(data)
    if not pairs:
        raise MalformedNotification("no form fields (an Alipay notification is x-www-form-urlencoded)")
    raw = {key: value for key, _, value in pairs}
    if len(raw) != len(pairs) or b"" in raw:
        seen: set[bytes] = set()
        for key, _, _ in pairs:
            if not key:
                raise MalformedNotification("a form field has an empty name")
            if key in seen:
                raise MalformedNotification(f"field {_show(key)} appears more than once")
            seen.add(key)

    declared = raw.get(b"charset", b"") or b"utf-8"
    try:
        charset = python_charset(declared.decode("ascii"))
    except ValueError:
        raise MalformedNotification(
            f"unsupported charset {_show(declared)} (expected one of {', '.join(sorted(CHARSETS))})"
        ) from None

    try:
        fields = {key.decode(charset): value.decode(charset) for key, value in raw.items()}
    except UnicodeDecodeError:
        fields = {}
    if len(fields) == len(raw):
        return Form(charset, raw, fields)
    # Slowly again, to say which field is wrong.
    fields = {}
    for key, value in raw.items():
        try:
            name = key.decode(charset)
        except UnicodeDecodeError:
            raise MalformedNotification(f"a field name is not valid {charset}: {_show(key)}") from None
        if name in fields:
            raise MalformedNotification(f"field {name[:40]!r} appears more than once")
        try:
            fields[name] = value.decode(charset)
        except UnicodeDecodeError:
            raise MalformedNotification(f"field {name[:40]!r} is not valid {charset}") from None
    return Form(charset, raw, fields)
