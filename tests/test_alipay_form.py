"""Decoding the form once, by its charset; malformed input only ever raises the two refusal errors."""

from __future__ import annotations

import urllib.parse
from urllib.parse import quote_plus

import pytest
from _alipay_keys import APP_ID, NOTIFY_FIELDS, account, key, parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paynotify_alipay import passback_params
from paynotify_alipay._form import _BAD_ESCAPE, _pairs, decode_form
from paynotify_alipay._shapes import SHAPED_FIELDS
from paynotify_alipay.testing import encode_form, make_notify, make_return, sign_fields

from paynotify import MalformedNotification, VerificationError

SUBJECT = "测试商品 A+B 套餐 (￥10%)"


def notify(**fields: str | None) -> bytes:
    return make_notify(key(), app_id=APP_ID, out_trade_no="order-1", **fields)  # type: ignore[arg-type]


def test_plus_and_space_are_encoded_and_decoded_once() -> None:
    data = notify(subject="A+B C")
    assert b"subject=A%2BB+C" in data
    assert parse(data).raw["subject"] == "A+B C"


@pytest.mark.parametrize("charset", ["gbk", "GBK", "gb2312", "utf-8", "UTF-8", "utf8"])
def test_charsets_verify_and_decode_chinese(charset: str) -> None:
    data = notify(subject=SUBJECT, body="退款说明 部分退款", charset=charset)
    result = parse(data)
    assert result.raw["subject"] == SUBJECT
    assert result.raw["body"] == "退款说明 部分退款"
    assert result.raw["charset"] == charset


def test_gbk_is_verified_on_gbk_bytes_not_utf8() -> None:
    data = notify(subject="测试", charset="gbk")
    assert b"subject=%B2%E2%CA%D4" in data  # 测试 in GBK, not UTF-8's %E6%B5%8B...
    assert parse(data).raw["subject"] == "测试"
    # The same text signed over UTF-8 bytes (the classic bug) does not verify as a gbk message.
    fields = {**NOTIFY_FIELDS, "charset": "gbk", "subject": "测试"}
    utf8_signature = sign_fields(fields, key(), charset="utf-8")
    with pytest.raises(VerificationError):
        parse(encode_form(dict(fields, sign=utf8_signature), charset="gbk"))


def test_gbk_body_claiming_utf8_is_malformed() -> None:
    data = notify(subject="测试", charset="gbk").replace(b"charset=gbk", b"charset=utf-8")
    with pytest.raises(MalformedNotification, match="not valid utf-8"):
        parse(data)


@pytest.mark.parametrize("charset", [b"latin-1", b"utf-16", b"big5", b"%FF%FE", b"rot13"])
def test_unknown_charset_is_malformed(charset: bytes) -> None:
    data = notify().replace(b"charset=utf-8", b"charset=" + charset)
    with pytest.raises(MalformedNotification, match="charset"):
        parse(data)


def test_missing_charset_means_utf8() -> None:
    fields = {**NOTIFY_FIELDS, "subject": SUBJECT}
    data = encode_form(dict(fields, sign=sign_fields(fields, key())))
    assert parse(data).raw["subject"] == SUBJECT


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "no form fields"),
        (b"&&&", "no form fields"),
        (b"=x&app_id=1", "empty name"),
        (b"a=1&b=2&a=1", "'a' appears more than once"),
        (b"sign=x&sign=y", "'sign' appears more than once"),
        (b"subject=%FF%FE&charset=utf-8", "'subject' is not valid utf-8"),
        (b"subject=%E6%B5&charset=utf-8", "'subject' is not valid utf-8"),
        (b"%FF=1", "field name is not valid utf-8"),
        (b"subject=%81&charset=gbk", "'subject' is not valid gbk"),
        (b"subject=100%&sign=x", "bad percent-encoding"),
        (b"subject=%zz&sign=x", "bad percent-encoding"),
        (b"charset=utf-8&charset=gbk", "appears more than once"),
        (b"subject=\xff\xfe&sign=x", "not valid utf-8"),
    ],
)
def test_malformed_bodies(data: bytes, match: str) -> None:
    with pytest.raises(MalformedNotification, match=match) as info:
        parse(data)
    assert info.value.account == "shop"


def test_duplicate_key_is_malformed_even_in_a_genuine_message() -> None:
    data = notify()
    with pytest.raises(MalformedNotification, match="'out_trade_no' appears more than once"):
        parse(data + b"&out_trade_no=order-1")


def test_raw_bytes_outside_percent_encoding_are_kept_as_bytes() -> None:
    # A sender that does not escape UTF-8 still means the same bytes: decoded once, by charset.
    form = decode_form("subject=测试&charset=utf-8".encode())
    assert form.raw[b"subject"] == "测试".encode()
    assert form.fields["subject"] == "测试"


def test_return_reads_the_query_for_get_and_the_body_for_post() -> None:
    data = make_return(key(), app_id=APP_ID, out_trade_no="order-1")
    assert parse(data, channel="return", method="GET").order_id == "order-1"
    assert parse(data, channel="return", method="POST").order_id == "order-1"
    with pytest.raises(MalformedNotification):
        parse(b"", channel="return", method="GET")


def test_passback_params_stays_as_received_in_content_and_raw() -> None:
    merchant_value = "order=1&coupon=满100减10 +vip"
    encoded = quote_plus(merchant_value)
    data = notify(passback_params=encoded)
    assert quote_plus(encoded).encode() in data  # percent-encoded twice on the wire
    result = parse(data)
    assert result.raw["passback_params"] == encoded  # still percent-encoded: as Alipay signed it
    assert passback_params(result) == merchant_value  # decoded once more, only on request
    # Signed over the decoded value instead: a verifier that decodes twice would accept this.
    fields = {**NOTIFY_FIELDS, "charset": "utf-8", "passback_params": merchant_value}
    wrong = sign_fields(fields, key())
    with pytest.raises(VerificationError):
        parse(encode_form(dict(fields, passback_params=encoded, sign=wrong)))


def test_passback_params_absent() -> None:
    assert passback_params(parse(notify())) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_refusals(data: bytes) -> None:
    for channel, method in (("notify", "POST"), ("return", "GET")):
        with pytest.raises((MalformedNotification, VerificationError)):
            parse(data, channel=channel, method=method)


_FORMISH = st.text(alphabet="ab=&%+2BFfe8sign_typecharset9utfgk-", max_size=200)


@settings(max_examples=300, deadline=None)
@given(_FORMISH)
def test_random_form_like_text_only_raises_refusals(text: str) -> None:
    with pytest.raises((MalformedNotification, VerificationError)):
        parse(text.encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0))
def test_random_bytes_spliced_into_a_genuine_notification_only_raise_refusals(junk: bytes, at: int) -> None:
    data = notify()
    position = at % (len(data) + 1)
    spliced = data[:position] + junk + data[position:]
    if spliced == data:
        return
    try:
        result = parse(spliced)
    except (MalformedNotification, VerificationError):
        return
    # Only content-neutral splices can verify: into the unsigned sign_type, or empty fields.
    original = parse(data).raw
    added = {k: "" for k in set(result.raw) - set(original)}
    assert {**result.raw, "sign_type": ""} == {**original, **added, "sign_type": ""}


_NAMES = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(
    lambda n: n not in {"sign", "sign_type", "charset", *NOTIFY_FIELDS, *SHAPED_FIELDS}
)
_VALUES = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_NAMES, _VALUES, max_size=8), st.sampled_from(["utf-8", "gbk"]))
def test_any_fields_round_trip_through_sign_encode_decode_verify(
    fields: dict[str, str], charset: str
) -> None:
    if charset == "gbk":
        try:
            "".join(fields.values()).encode("gbk")
        except UnicodeEncodeError:
            return
    fields = {**fields, **NOTIFY_FIELDS, "charset": charset}
    data = encode_form(dict(fields, sign=sign_fields(fields, key(), charset=charset)), charset)
    result = parse(data, account(seller_id=None))
    assert {k: result.raw[k] for k in fields} == fields


@settings(max_examples=500)
@given(st.lists(st.tuples(st.text(max_size=6), st.text(max_size=12)), max_size=8), st.booleans())
def test_decodes_as_parse_qsl_does(fields: list[tuple[str, str]], plus_for_space: bool) -> None:
    """On every well-formed form, the same fields as urllib's parse_qsl (strict utf-8)."""
    quote = urllib.parse.quote_plus if plus_for_space else urllib.parse.quote
    body = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in fields).encode()
    expected = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    names = [k for k, _ in expected]
    if not expected or "" in names or len(set(names)) != len(names):
        with pytest.raises(MalformedNotification):
            decode_form(body)
    else:
        assert decode_form(body).fields == dict(expected)


_FORM_BYTES = st.lists(
    st.one_of(
        st.binary(max_size=4),
        st.sampled_from([b"%", b"=", b"&", b"+", b"\r", b"\n", b"=\n", b"_", b"\x00", b"%3D", b"%25"]),
        st.builds(
            lambda h: b"%" + h,
            st.sampled_from([b"%02x" % i for i in range(256)] + [b"%02X" % i for i in range(256)]),
        ),
    ),
    max_size=24,
).map(b"".join)


@settings(max_examples=2000)
@given(_FORM_BYTES)
def test_percent_decoding_is_unquote_to_bytes_on_any_bytes(data: bytes) -> None:
    """The C decoder reads exactly what urllib's unquote_to_bytes reads, on any body decode_form accepts
    (raw `=`, CR/LF, NUL, `_` and non-ASCII bytes included)."""
    if _BAD_ESCAPE.search(data):
        return
    expected = []
    for part in data.replace(b"+", b" ").split(b"&"):
        if part:
            name, sep, value = part.partition(b"=")
            expected.append((urllib.parse.unquote_to_bytes(name), sep, urllib.parse.unquote_to_bytes(value)))
    assert _pairs(data) == expected
