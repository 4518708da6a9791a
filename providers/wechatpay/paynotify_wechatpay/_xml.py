"""WeChat Pay's flat XML: `<xml><k>v</k>...</xml>` in, `{k: v}` out, or MalformedNotification.

The body must be UTF-8. A DTD or an entity declaration is refused before parsing and again at the
expat level (a document type declaration, an entity declaration or an external entity reference
stops the parser), so neither "billion laughs" nor external entities can be expanded. The root must
be the expected element; its children must be plain text elements (CDATA or not), each at most
once, without attributes; the whole at most MAX_XML_BYTES. Whitespace between the elements is
formatting and ignored; values are kept exactly as sent, nothing stripped (XML's own line-end
normalization aside: a CR arrives as LF), and an empty element is the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn
from xml.parsers import expat

from paynotify import MalformedNotification

__all__ = ["MAX_XML_BYTES", "parse_flat_xml", "to_xml"]

MAX_XML_BYTES = 1 << 20
"""A bound of its own (WeChat Pay v2 messages are a few KB), whatever limit the pipeline applies."""


class _Forbidden(Exception):
    pass


def _forbid(what: str) -> Any:
    def handler(*_args: object) -> NoReturn:
        raise _Forbidden(what)

    return handler


def _parser_create(encoding: str | None = None, namespace_separator: str | None = None) -> Any:
    parser = expat.ParserCreate(encoding, namespace_separator)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _forbid("a DTD (document type declaration)")
    parser.EntityDeclHandler = _forbid("an entity declaration")
    parser.ExternalEntityRefHandler = _forbid("an external entity reference")
    return parser


_ROOT_START = re.compile(r"<[^?!]")


def _refuse_declarations(text: str, what: str) -> None:
    """The first line of defence: no DTD or entity declaration even reaches the parser.

    Declarations can only stand in the prolog, before the root element; the same characters inside
    a value (CDATA) are data and must not refuse a genuine notification.
    """
    root = _ROOT_START.search(text)
    prolog = text[: root.start()] if root else text
    for marker, label in (
        ("<!DOCTYPE", "a DTD (document type declaration)"),
        ("<!ENTITY", "an entity declaration"),
    ):
        if marker in prolog:
            raise MalformedNotification(f"{what} XML contains {label}; refused")


class _FlatDocument:
    """expat handlers that collect `<root><name>text</name>...</root>` and refuse anything deeper.

    Straight on expat rather than through xmltodict: building xmltodict's general tree and then
    checking it is flat cost ~3x the parse itself, the largest part of a v2 notification's handling
    (docs/benchmarks.md). Same parser, same guards.
    """

    def __init__(self, root: str, what: str) -> None:
        self.root, self.what = root, what
        self.fields: dict[str, str] = {}
        self.repeated: dict[str, int] = {}
        self.depth = 0
        self.name = ""
        self.text: list[str] = []
        self.stray_text = False

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 1:
            if name != self.root:
                raise MalformedNotification(f"{self.what} XML root must be <{self.root}>, found <{name}>")
            if attributes:
                first = next(iter(attributes))
                raise MalformedNotification(
                    f"{self.what} XML <{self.root}> has attribute {first!r}; none is expected"
                )
        elif self.depth == 2:
            self.name, self.text = name, []
            if attributes:
                raise self._not_text(name)
        else:
            raise self._not_text(self.name)

    def end(self, name: str) -> None:
        if self.depth == 2:
            if name in self.fields:
                self.repeated[name] = self.repeated.get(name, 1) + 1
            else:
                self.fields[name] = "".join(self.text)
        self.depth -= 1

    def data(self, text: str) -> None:
        if self.depth == 2:
            self.text.append(text)
        elif not self.stray_text and text.strip():
            self.stray_text = True

    def _not_text(self, name: str) -> MalformedNotification:
        return MalformedNotification(
            f"{self.what} XML element <{name}> has child elements or attributes; only text is expected"
        )


def parse_flat_xml(body: bytes, root: str = "xml", *, what: str = "notification") -> dict[str, str]:
    """The children of `<root>` as a dict of strings; raises MalformedNotification for anything else."""
    if len(body) > MAX_XML_BYTES:
        raise MalformedNotification(
            f"{what} is {len(body)} bytes; more than {MAX_XML_BYTES} is never WeChat Pay's"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNotification(f"{what} is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise MalformedNotification(f"{what} is empty")
    _refuse_declarations(text, what)
    document = _FlatDocument(root, what)
    # "utf-8" overrides any encoding declaration: the bytes were just checked to be UTF-8.
    parser = _parser_create("utf-8")
    parser.buffer_text = True
    parser.StartElementHandler = document.start
    parser.EndElementHandler = document.end
    parser.CharacterDataHandler = document.data
    try:
        parser.Parse(body, True)
    except _Forbidden as exc:
        raise MalformedNotification(f"{what} XML contains {exc}; refused") from None
    except expat.ExpatError as exc:
        raise MalformedNotification(f"{what} is not well-formed XML: {exc}") from None

    if document.stray_text:
        where = "between its elements" if document.fields else "instead of elements"
        raise MalformedNotification(f"{what} XML <{root}> holds text {where}")
    if document.repeated:
        name, count = next(iter(document.repeated.items()))  # the first repeated element
        raise MalformedNotification(f"{what} XML has element <{name}> {count} times")
    return document.fields


def _cdata(value: str) -> str:
    # "]]>" cannot appear inside one CDATA section: close it and open another between "]]" and ">".
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(fields: Mapping[str, str | int], root: str = "xml", *, newlines: bool = False) -> str:
    """Serialize flat fields the way WeChat Pay does: strings in CDATA, integers as plain text."""
    sep = "\n" if newlines else ""
    parts = [f"<{root}>"]
    for name, value in fields.items():
        text = str(value) if isinstance(value, int) else _cdata(value)
        parts.append(f"{sep}<{name}>{text}</{name}>")
    parts.append(f"{sep}</{root}>")
    return "".join(parts)
