"""The real UnionPay test-environment vectors (tests/vectors/unionpay, see PROVENANCE.md): they verify
untouched at their time, and any change to a signed byte, a CRLF turned into LF, another clock or a
production account refuses them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from _unionpay import (
    PINNED,
    SIGNED_AT,
    VECTOR_CERT_ID,
    VECTOR_MER_ID,
    join,
    pairs,
    parse,
    replace_field,
    result,
    txt_as_form,
    vector,
    vector_account,
)
from paynotify_unionpay import UnionPayProvider

from paynotify import (
    BEIJING,
    Account,
    Kind,
    MalformedNotification,
    Notifier,
    PaymentResult,
    Source,
    Status,
    VerificationError,
)

NOTIFY = vector("ys_open_callback_consume.form")
FIELDS = json.loads(vector("ys_open_callback_consume.fields.json"))
LEAF_NOT_BEFORE = datetime.fromisoformat("2020-07-31T01:19:16+00:00").timestamp()
LEAF_NOT_AFTER = datetime.fromisoformat("2025-07-31T01:19:16+00:00").timestamp()


def at(timestamp: float, **settings: str) -> Account:  # type: ignore[type-arg]
    acct = vector_account(**settings)
    return Account(acct.name, UnionPayProvider(clock=lambda: timestamp), acct.settings)


def test_vectors_are_the_shared_ones_byte_for_byte() -> None:
    # Guards against a checkout or an editor "fixing" the files: CRLF kept, no newline added.
    assert not NOTIFY.endswith(b"\n")
    assert NOTIFY.count(b"%0D%0A") == 25
    assert "\r\n" in FIELDS["signPubKeyCert"]
    for name in ("ys_query_response_consume.txt", "ys_cancel_response.txt", "ys_refund_response.txt"):
        data = vector(name)
        assert data.count(b"\r\n") == 25, name
        assert not data.endswith(b"\n"), name


def test_form_vector_holds_the_published_values() -> None:
    assert {k.decode(): v.decode() for k, v in pairs(NOTIFY)} == FIELDS


def test_notify_vector_verifies_and_normalizes() -> None:
    paid = result(NOTIFY, vector_account())
    assert (paid.kind, paid.status, paid.provider_status) == (Kind.PAYMENT, Status.SUCCEEDED, "00")
    assert paid.is_paid
    assert paid.order_id == "yansongda20220908132206"
    assert paid.transaction_id == "782209081322060674028"
    assert paid.amount == Decimal("0.01")
    assert paid.currency == "CNY"
    assert paid.paid_at == datetime(2022, 9, 8, 13, 22, 6, tzinfo=BEIJING)
    assert paid.merchant_id == VECTOR_MER_ID
    assert paid.key_id == VECTOR_CERT_ID
    assert paid.source is Source.NOTIFY
    assert paid.raw["signPubKeyCert"] == FIELDS["signPubKeyCert"]


def test_every_vector_verifies_through_the_provider() -> None:
    query = result(
        join([(k.encode(), v.encode()) for k, v in _fields("ys_pay_response_verify")]), vector_account()
    )
    assert query.order_id == "pay20220911041647"
    consume = result(txt_as_form("ys_query_response_consume.txt"), vector_account())
    assert (consume.kind, consume.amount, consume.raw["respMsg"]) == (
        Kind.PAYMENT,
        Decimal("0.01"),
        "成功[0000000]",
    )
    undo = result(txt_as_form("ys_cancel_response.txt"), vector_account())
    assert (undo.kind, undo.status, undo.raw["txnType"]) == (Kind.REFUND, Status.SUCCEEDED, "31")
    assert (undo.transaction_id, undo.refund_id) == ("652401051647252574008", "cancelpay20240105164725")
    assert undo.amount == undo.refund_amount == Decimal("0.01")  # an undo is the whole amount
    refund = result(txt_as_form("ys_refund_response.txt"), vector_account())
    assert (refund.kind, refund.raw["txnType"], refund.transaction_id) == (
        Kind.REFUND,
        "04",
        "052401051658427862748",
    )
    assert (refund.amount, refund.refund_amount, refund.provider_refund_id) == (
        None,
        Decimal("0.01"),
        "052401051658427863998",
    )


def _fields(stem: str) -> list[tuple[str, str]]:
    return list(json.loads(vector(f"{stem}.fields.json")).items())


def _flips(data: bytes) -> list[tuple[str, bytes, bool]]:
    """Every single-byte change (xor 1) of every signed field name and value, as a re-encoded form,
    and whether it leaves a form that is not UnionPay's (refused as malformed, not as forged)."""
    items = pairs(data)
    out = []
    for index, (name, value) in enumerate(items):
        if name == b"signature":
            continue
        for is_name, text in ((True, name), (False, value)):
            for pos in range(len(text)):
                changed = text[:pos] + bytes([text[pos] ^ 0x01]) + text[pos + 1 :]
                copy = list(items)
                copy[index] = (changed, value) if is_name else (name, changed)
                new_name = changed if is_name else name
                # Without a readable `encoding` nothing can be checked; "tx\x1fAmt" is no field name.
                # Every other change ("txnAmt" -> "txnAmu", "0.01" -> "1.01") is a forgery.
                malformed = name == b"encoding" or not all(0x21 <= c <= 0x7E for c in new_name)
                label = f"{name.decode()}.{'name' if is_name else 'value'}[{pos}]"
                out.append((label, join(copy), malformed))
    return out


def test_reencoding_untouched_pairs_still_verifies() -> None:
    # Validates the flip harness: only the flipped byte differs from the genuine vector.
    assert result(join(pairs(NOTIFY)), vector_account()).order_id == "yansongda20220908132206"


def test_any_flipped_byte_of_any_signed_field_is_refused() -> None:
    acct = vector_account()
    flips = _flips(NOTIFY)
    assert len(flips) >= 2200  # names and values of 25 signed fields
    for label, changed, malformed in flips:
        with pytest.raises((VerificationError, MalformedNotification)) as info:
            parse(changed, acct)
        expected = MalformedNotification if malformed else VerificationError
        assert info.type is expected, (label, str(info.value))


def test_flipped_or_missing_signature_is_refused() -> None:
    signature = FIELDS["signature"].encode()
    changed = signature[:10] + (b"A" if signature[10:11] != b"A" else b"B") + signature[11:]
    with pytest.raises(VerificationError, match="does not verify"):
        parse(replace_field(NOTIFY, b"signature", changed), vector_account())
    with pytest.raises(VerificationError, match="no signature"):
        parse(replace_field(NOTIFY, b"signature", None), vector_account())
    with pytest.raises(VerificationError, match="base64"):
        parse(replace_field(NOTIFY, b"signature", signature + b"!"), vector_account())


def test_crlf_turned_into_lf_in_sign_pub_key_cert_is_refused() -> None:
    lf = NOTIFY.replace(b"%0D%0A", b"%0A")
    assert lf != NOTIFY
    # The certificate still reads and chains (PEM does not care); the signed bytes changed.
    with pytest.raises(VerificationError, match=r"signature \(SHA-256\) does not verify"):
        parse(lf, vector_account())


def test_plus_is_a_space_and_percent_2b_a_plus() -> None:
    # The real signature covers "-----BEGIN CERTIFICATE-----" with spaces: sent as `+`, they still verify.
    assert result(NOTIFY.replace(b"%20", b"+"), vector_account()).is_paid
    with pytest.raises(VerificationError):
        parse(NOTIFY.replace(b"%2B", b"+", 1), vector_account())


def test_appended_or_removed_fields_are_refused() -> None:
    with pytest.raises(VerificationError):
        parse(NOTIFY + b"&reqReserved=", vector_account())  # empty values are signed too
    with pytest.raises(VerificationError):
        parse(NOTIFY + b"&reqReserved=x", vector_account())
    for name in (b"exchangeRate", b"accNo", b"txnAmt", b"merId"):
        with pytest.raises(VerificationError):
            parse(replace_field(NOTIFY, name, None), vector_account())


def test_expired_leaf_is_refused_at_today() -> None:
    acct = Account("sandbox", UnionPayProvider(), vector_account().settings)
    with pytest.raises(VerificationError, match=rf"certId {VECTOR_CERT_ID}.* is expired: valid 2020-07-31"):
        parse(NOTIFY, acct)


@pytest.mark.parametrize(
    ("moment", "accepted"),
    [
        (LEAF_NOT_BEFORE - 1, False),
        (LEAF_NOT_BEFORE, True),
        (SIGNED_AT, True),
        (LEAF_NOT_AFTER, True),
        (LEAF_NOT_AFTER + 1, False),
    ],
    ids=["before", "first-second", "signed", "last-second", "after"],
)
def test_leaf_validity_is_checked_at_the_provider_clock(moment: float, accepted: bool) -> None:
    if accepted:
        assert result(NOTIFY, at(moment)).is_paid
    else:
        with pytest.raises(VerificationError, match="not yet valid" if moment < SIGNED_AT else "expired"):
            parse(NOTIFY, at(moment))


def test_a_test_certificate_is_refused_by_a_production_account() -> None:
    with pytest.raises(VerificationError, match=r"chain link leaf -> middle failed \(production") as info:
        parse(NOTIFY, at(SIGNED_AT, environment="production"))
    assert "CFCA TEST OCA1" in str(info.value)
    assert str(info.value).startswith("account 'sandbox': ")


async def test_vector_through_the_asgi_route() -> None:
    notifier = Notifier("memory://")
    notifier.add_account("sandbox", PINNED, mer_id=VECTOR_MER_ID, environment="test")
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        first = await client.post("/sandbox/notify", content=NOTIFY, headers=headers)
        again = await client.post("/sandbox/notify", content=NOTIFY, headers=headers)
        forged = await client.post(
            "/sandbox/notify", content=replace_field(NOTIFY, b"txnAmt", b"100"), headers=headers
        )
        back = await client.post("/sandbox/return", content=NOTIFY, headers=headers)
    await notifier.aclose()
    assert (first.status_code, first.content) == (200, b"ok")
    assert (again.status_code, again.content) == (200, b"ok")
    assert (forged.status_code, forged.content) == (401, b"fail")
    assert back.status_code == 200
    assert back.content != b"ok"
    assert b"yansongda20220908132206" in back.content
    assert [r.order_id for r in seen] == ["yansongda20220908132206"]
    assert seen[0].paid_at is not None
    assert seen[0].paid_at.utcoffset() == timedelta(hours=8)
