"""Every documented UnionPay field shape, the structure rule that keeps a sign string cut one way,
and signPubKeyCert as exactly one PEM certificate. Every message here is genuinely signed (a
throwaway chain), so what refuses it is the rule under test, after verification."""

from __future__ import annotations

import pytest
from _unionpay import MER_ID, ORDER_ID, chain, join, notify, parse, result
from paynotify_unionpay._shapes import FREE_TEXT, SHAPES
from paynotify_unionpay.testing import query_id, sign_fields

from paynotify import InvalidContent, PaymentResult, VerificationError

ORIG = query_id(MER_ID, ORDER_ID)

# field -> (a value of its documented shape, one out of it). txnType, merId and signMethod are
# left to their own tests: they pick the kind, the account check and the signature scheme.
VALUES: dict[str, tuple[str, str]] = {
    "txnSubType": ("03", "3"),
    "channelType": ("07", "7a"),
    "bizType": ("000301", "00020"),
    "accessType": ("1", "01"),
    "issuerIdentifyMode": ("1", "x"),
    "orderId": ("a" * 40, "a" * 41),
    "queryId": ("78220908132206067402a", "1" * 33),
    "origQryId": ("9" * 21, "9" * 20 + "-"),
    "certId": ("69678957876", "6967895787a"),
    "txnTime": ("20261231235959", "2026123123595"),
    "traceTime": ("1231235959", "123123595"),
    "traceNo": ("000001", "1234567"),
    "settleDate": ("1231", "12/31"),
    "exchangeDate": ("0101", "1"),
    "txnAmt": ("999999999999", "1.5"),
    "settleAmt": ("0", "+1"),
    "currencyCode": ("156", "15"),
    "settleCurrencyCode": ("840", "RMB1"),
    "exchangeRate": ("30000000", "0.5"),
    "respCode": ("A6", "A"),
    "origRespCode": ("a6", "0-"),
    "payCardType": ("01", "1"),
    "payType": ("0001", "01"),
    "accNo": ("6216***********0018", "6216 0018"),
}


def test_every_documented_shape_has_a_case_here() -> None:
    assert set(VALUES) | {"txnType", "merId", "signMethod"} == set(SHAPES)


def _with(name: str, value: str) -> bytes:
    if name == "origQryId":  # a refund's link to its consume
        return notify(txn_type="04", order_id="refund20260101001", orig_qry_id=value)
    return notify(**{name: value})


@pytest.mark.parametrize("name", sorted(VALUES))
def test_a_documented_shape_is_accepted(name: str) -> None:
    good = VALUES[name][0]
    assert result(_with(name, good)).raw[name] == good


@pytest.mark.parametrize("name", sorted(VALUES))
def test_out_of_its_documented_shape_is_invalid_content(name: str) -> None:
    bad = VALUES[name][1]
    with pytest.raises(InvalidContent, match=f"^account 'shop': verified, but {name} '") as info:
        parse(_with(name, bad))
    assert info.value.raw[name] == bad
    assert SHAPES[name][1] in info.value.message


def test_mer_id_and_txn_type_out_of_shape() -> None:
    with pytest.raises(InvalidContent, match="merId '7772900581-0001' is not 1-32 letters or digits"):
        parse(notify(merId="7772900581-0001"))
    with pytest.raises(InvalidContent, match="txnType 'O1' is not 2 digits"):
        parse(notify(txnType="O1"))


def test_a_long_value_is_not_echoed_whole() -> None:
    with pytest.raises(InvalidContent) as info:
        parse(notify(traceNo="1" * 5000))
    assert "1" * 30 not in info.value.message
    assert len(info.value.message) < 200


GROUPED_OK = ["{a=1&b=2}", "[x=1&y=2]", "{a=[1&2}", "成功[0000000]", "a=b", "}]", "{}[]", ""]
GROUPED_BAD = ["a=1&b=2", "{a=1}&b=2", "{open", "[open", "{a&b=c", "&", "[a]&"]


@pytest.mark.parametrize("name", FREE_TEXT)
@pytest.mark.parametrize("value", GROUPED_OK)
def test_free_text_may_hold_anything_but_a_bare_ampersand_or_an_open_group(name: str, value: str) -> None:
    assert result(notify(**{name: value})).raw[name] == value


@pytest.mark.parametrize("name", FREE_TEXT)
@pytest.mark.parametrize("value", GROUPED_BAD)
def test_a_bare_ampersand_or_an_open_group_could_be_a_fold(name: str, value: str) -> None:
    with pytest.raises(InvalidContent, match=f"{name} .* outside a {{...}} or \\[...\\] group, or leaves"):
        parse(notify(**{name: value}))


def test_a_field_unionpay_does_not_document_is_held_to_the_structure() -> None:
    assert result(notify(newField2030="{k=v&k2=v2}")).raw["newField2030"] == "{k=v&k2=v2}"
    with pytest.raises(InvalidContent, match="newField2030"):
        parse(notify(newField2030="k=v&k2=v2"))


def _signed(extra: dict[str, str]) -> bytes:
    """notify()'s fields plus `extra` under names no keyword can carry, signed and form-encoded."""
    fields = {k.decode(): v.decode() for k, v in _pairs(notify()) if k != b"signature"}
    fields.update(extra)
    signature = sign_fields(fields, chain().leaf_key)
    return join([(k.encode(), v.encode()) for k, v in [*fields.items(), ("signature", signature)]])


def _pairs(body: bytes) -> list[tuple[bytes, bytes]]:
    from _unionpay import pairs

    return pairs(body)


@pytest.mark.parametrize("name", ["reqReserved=x", "a&b", "&"])
def test_a_name_holding_an_equals_or_ampersand_is_refused_once_verified(name: str) -> None:
    with pytest.raises(InvalidContent, match="holds '=' or '&'"):
        parse(_signed({name: "1"}))


def test_sign_pub_key_cert_is_exactly_one_pem_certificate() -> None:
    pem = chain().leaf_pem
    assert pem.count("-----BEGIN") == 1
    assert not pem.endswith("\n")  # CRLF inside, none after: as UnionPay sends it
    accepted = [pem + "\r\n", pem.replace("\r\n", "\n"), pem.replace("\r\n", "\n") + "\n"]
    for value in accepted:
        assert isinstance(parse(notify(signPubKeyCert=value)), PaymentResult)
    refused = [
        pem + "&traceNo=067402",  # the probe's fold
        pem + "\r\n" + pem,  # two certificates
        pem + "\r\n\r\n",
        pem + " ",
        "\r\n" + pem,
        pem.replace("-----BEGIN CERTIFICATE-----\r\n", "-----BEGIN CERTIFICATE-----\r\nProc-Type: 4\r\n"),
        pem.replace("\r\n", " ", 2),
        pem.replace("CERTIFICATE-----\r\n", "CERTIFICATE-----\r\n\r\n", 1),
    ]
    for value in refused:
        with pytest.raises(VerificationError, match="signPubKeyCert is not exactly one PEM certificate"):
            parse(notify(signPubKeyCert=value))
