"""Alipay's x-www-form-urlencoded fields: decoded exactly once, to bytes, then text by `charset`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from paynotify import MalformedNotification

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


def _unquote(text: bytes) -> bytes:
    """Form decoding of one name or value: `+` is a space, `%XX` a byte; once, never again."""
    text = text.replace(b"+", b" ")
    return unquote_to_bytes(text) if b"%" in text else text


def decode_form(data: bytes) -> Form:
    """Split and percent-decode `data` once; raise MalformedNotification if it is not an Alipay form."""
    if _BAD_ESCAPE.search(data):
        raise MalformedNotification("bad percent-encoding: '%' not followed by two hex digits")
    # Decoded on bytes: the real charset is only known once the `charset` field has been read.
    # As urllib.parse.parse_qsl(keep_blank_values=True): a part without "=" is a blank value.
    raw: dict[bytes, bytes] = {}
    for part in data.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        # Most names and values need no decoding; testing first skips two calls per field.
        if b"%" in key or b"+" in key:
            key = _unquote(key)
        if b"%" in value or b"+" in value:
            value = _unquote(value)
        if not key:
            raise MalformedNotification("a form field has an empty name")
        if key in raw:
            raise MalformedNotification(f"field {_show(key)} appears more than once")
        raw[key] = value
    if not raw:
        raise MalformedNotification("no form fields (an Alipay notification is x-www-form-urlencoded)")

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
