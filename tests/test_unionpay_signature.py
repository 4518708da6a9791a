"""The signature rule beyond the vectors: 5.0.0 (SHA-1, certId) with a throwaway chain, gbk, the
sign string (empty values kept, `+` a space), and what is refused: other sign methods and versions,
one version's hash under the other's name, a 5.0.0 message to an account without verify_certs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _unionpay import MER_ID, ORDER_ID, account, chain, join, notify, pairs, parse, replace_field, result
from hypothesis import given, settings
from hypothesis import strategies as st
from paynotify_unionpay.testing import encode_form, generate_chain, make_notify, sign_fields

from paynotify import InvalidContent, MalformedNotification, VerificationError


def fields_of(body: bytes) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in pairs(body)}


def test_5_0_0_verifies_with_the_verify_cert_its_cert_id_names() -> None:
    body = notify(version="5.0.0")
    fields = fields_of(body)
    assert "signPubKeyCert" not in fields
    assert fields["certId"] == chain().cert_id
    paid = result(body)
    assert paid.is_paid
    assert paid.key_id == chain().cert_id


def test_5_0_0_is_sha1_of_the_hex_sha1() -> None:
    body = notify(version="5.0.0")
    fields = fields_of(body)
    # Signed the 5.1.0 way but labelled 5.0.0: the account verifies 5.0.0 with SHA-1 only.
    as_510 = sign_fields({**fields, "version": "5.0.0"}, chain().leaf_key, "5.1.0")
    with pytest.raises(VerificationError, match=r"5.0.0 signature \(SHA-1\) does not verify"):
        parse(replace_field(body, b"signature", as_510.encode()))


def test_5_1_0_signed_with_sha1_is_refused() -> None:
    body = notify()
    sha1 = sign_fields(fields_of(body), chain().leaf_key, "5.0.0")
    with pytest.raises(VerificationError, match=r"5.1.0 signature \(SHA-256\) does not verify"):
        parse(replace_field(body, b"signature", sha1.encode()))


def test_5_0_0_without_verify_certs_is_refused() -> None:
    with pytest.raises(VerificationError, match=r"a 5\.0\.0 message, and the account has no verify_certs"):
        parse(notify(version="5.0.0"), account(verify_certs=[]))


def test_5_0_0_with_an_unknown_cert_id_is_refused_naming_the_configured_ones() -> None:
    other = generate_chain()
    body = make_notify(other, mer_id=MER_ID, order_id=ORDER_ID, version="5.0.0")
    with pytest.raises(
        VerificationError, match=rf"certId '{other.cert_id}' names no .*: {chain().cert_id}\)"
    ):
        parse(body)


def test_5_0_0_under_a_configured_cert_id_but_another_key_is_refused() -> None:
    other = generate_chain()
    body = make_notify(other, mer_id=MER_ID, order_id=ORDER_ID, version="5.0.0", certId=chain().cert_id)
    with pytest.raises(VerificationError, match="does not verify"):
        parse(body)


def test_5_0_0_verify_certs_are_trusted_by_configuration_not_by_date() -> None:
    # 5.0.0 names its certificate: the merchant installed it, so no chain, CN or expiry applies.
    now = datetime.now(UTC)
    old = chain().with_leaf(not_before=now - timedelta(days=800), not_after=now - timedelta(days=400))
    acct = account(verify_certs=[old.leaf_pem])
    assert result(make_notify(old, mer_id=MER_ID, order_id=ORDER_ID, version="5.0.0"), acct).is_paid
    with pytest.raises(VerificationError, match="expired"):
        parse(make_notify(old, mer_id=MER_ID, order_id=ORDER_ID), acct)  # 5.1.0 carries it: checked


@pytest.mark.parametrize("version", ["5.1.0", "5.0.0"])
def test_gbk_is_verified_on_gbk_bytes(version: str) -> None:
    body = notify(encoding="gbk", version=version, respMsg="成功[0000000]", reqReserved="订单 备注+1")
    assert b"respMsg=%B3%C9%B9%A6" in body  # 成功 in gbk
    paid = result(body)
    assert (paid.raw["respMsg"], paid.raw["reqReserved"]) == ("成功[0000000]", "订单 备注+1")
    # The same text in utf-8 bytes, still labelled gbk: what a verifier hashing utf-8 would accept.
    utf8 = join([(k, v.decode("gbk").encode("utf-8")) for k, v in pairs(body)])
    assert utf8 != body
    with pytest.raises(VerificationError):
        parse(utf8)


def test_encoding_names_are_case_insensitive_and_others_refused() -> None:
    assert result(notify(encoding="UTF-8")).is_paid
    assert result(notify(encoding="GBK", respMsg="成功")).raw["respMsg"] == "成功"
    body = notify()
    for value, match in [(b"latin-1", "unsupported encoding"), (None, "no `encoding` field")]:
        with pytest.raises(MalformedNotification, match=match):
            parse(replace_field(body, b"encoding", value))


def test_a_field_not_valid_in_its_encoding_is_refused_after_verifying() -> None:
    # Signed over those very bytes, so it verifies; it still cannot be read as utf-8.
    fields = fields_of(notify())
    raw = {k: v.encode() for k, v in fields.items() if k != "signature"}
    raw["reqReserved"] = b"\xff\xfe"
    from paynotify_unionpay._signature import sign, sign_string

    signature = sign(sign_string({k.encode(): v for k, v in raw.items()}), chain().leaf_key)
    body = join([(k.encode(), v) for k, v in raw.items()] + [(b"signature", signature.encode())])
    with pytest.raises(InvalidContent, match="verified, but field 'reqReserved' is not valid utf-8") as info:
        parse(body)
    # Kept for the record all the same: every field, the unreadable bytes escaped.
    assert info.value.raw["reqReserved"] == "\\xff\\xfe"
    assert info.value.raw["orderId"] == fields["orderId"]


@settings(max_examples=40, deadline=None)
@given(
    value=st.text(alphabet=st.characters(codec="gbk"), max_size=30),
    encoding=st.sampled_from(["utf-8", "gbk"]),
    version=st.sampled_from(["5.1.0", "5.0.0"]),
)
def test_any_text_round_trips_signed_and_verified(value: str, encoding: str, version: str) -> None:
    # Whatever a merchant echoes in reqReserved (spaces, `+`, `=`, `%`, CR LF, Chinese): it is
    # signed over the bytes UnionPay would send, verified on them, and read back as it was. An `&`
    # outside a {...} or [...] group, or a group left open, is what it may not hold (such a value
    # could be a fold, see _shapes): then the verified message is refused as content, kept in `raw`.
    body = notify(reqReserved=value, encoding=encoding, version=version)
    if not _could_swallow(value):
        assert result(body).raw["reqReserved"] == value
        return
    with pytest.raises(InvalidContent, match=r"verified, but reqReserved .* outside a") as info:
        parse(body)
    assert info.value.raw["reqReserved"] == value


def _could_swallow(value: str) -> bool:
    """UnionPay's SDK parser, as a loop: an `&` it would split on, or a group it would leave open."""
    closer = ""
    for char in value:
        if closer:
            closer = "" if char == closer else closer
        elif char in "{[":
            closer = "}" if char == "{" else "]"
        elif char == "&":
            return True
    return bool(closer)


def test_empty_values_are_signed() -> None:
    body = notify(reqReserved="")
    assert b"reqReserved=&" in body
    assert result(body).raw["reqReserved"] == ""
    with pytest.raises(VerificationError):
        parse(replace_field(body, b"reqReserved", None))


def test_space_as_plus_or_percent_20_reads_the_same() -> None:
    body = notify(reqReserved="a b")
    assert b"reqReserved=a%20b" in body
    assert result(body.replace(b"a%20b", b"a+b")).raw["reqReserved"] == "a b"
    with pytest.raises(VerificationError):
        parse(body.replace(b"a%20b", b"a%2Bb"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (b"signMethod", b"11", "signMethod '11' is not supported"),
        (b"signMethod", b"12", "signMethod '12' is not supported"),
        (b"signMethod", None, "signMethod '' is not supported"),
        (b"version", b"5.2.0", "version '5.2.0' is not supported"),
        (b"version", None, "version '' is not supported"),
    ],
)
def test_other_sign_methods_and_versions_are_refused_clearly(
    field: bytes, value: bytes | None, message: str
) -> None:
    with pytest.raises(VerificationError, match=message):
        parse(replace_field(notify(), field, value))


def test_a_signature_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(VerificationError, match="signature is 3 bytes"):
        parse(replace_field(notify(), b"signature", b"AAAA"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no form fields"),
        (b"&&", "no form fields"),
        (b"a=1&a=2&encoding=utf-8", "field 'a' appears more than once"),
        (b"=1&encoding=utf-8", "a field name is empty"),
        (b"tx%1FAmt=1&encoding=utf-8", "not printable ASCII"),
        (b"tx%E9Amt=1&encoding=utf-8", "not printable ASCII"),
        (b"txnAmt=%E&encoding=utf-8", "bad percent-encoding"),
        (b"<xml>1</xml>", "no `encoding` field"),
        (b'{"txnAmt": "1"}', "not printable ASCII"),
    ],
)
def test_what_is_not_a_unionpay_form_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(MalformedNotification, match=message):
        parse(body)


def test_encode_form_and_sign_fields_are_what_the_provider_reads() -> None:
    fields = fields_of(notify())
    fields["signature"] = sign_fields(fields, chain().leaf_key)
    assert result(encode_form(fields)).order_id == ORDER_ID
