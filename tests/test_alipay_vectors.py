"""The real Alipay sandbox vectors (tests/vectors/alipay, see PROVENANCE.md): they verify untouched,
and any change to a signed byte is refused."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from _alipay_keys import (
    VECTOR_APP_ID,
    VECTOR_SELLER_ID,
    join,
    pairs,
    parse,
    vector,
    vector_account,
    vector_key,
)

from paynotify import Kind, MalformedNotification, Notifier, PaymentResult, Source, Status, VerificationError

NOTIFY = vector("notify_trade_success.form")
RETURN = vector("return_page_pay.query")
UNSIGNED = {b"sign", b"sign_type"}


def test_vectors_are_the_shared_ones_byte_for_byte() -> None:
    # Guards against an editor "fixing" the files: no newline, nothing re-encoded.
    assert not NOTIFY.endswith(b"\n")
    assert b"subject=yansongda%2B%E6%B5%8B%E8%AF%95+-+1" in NOTIFY
    assert vector_key().startswith("-----BEGIN PUBLIC KEY-----")


def test_notify_vector_verifies_and_normalizes() -> None:
    result = parse(NOTIFY, vector_account())
    assert result.kind is Kind.PAYMENT
    assert result.status is Status.SUCCEEDED
    assert result.provider_status == "TRADE_SUCCESS"
    assert result.is_paid
    assert result.order_id == "1703147160"
    assert result.transaction_id == "2023122122001499160501589436"
    assert result.amount == Decimal("0.01")
    assert isinstance(result.amount, Decimal)
    assert result.paid_at is not None
    assert result.paid_at.utcoffset() == timedelta(hours=8)
    assert (result.paid_at.hour, result.paid_at.minute, result.paid_at.second) == (16, 26, 43)
    assert result.payer_id == "2088722003899169"
    assert (result.app_id, result.merchant_id) == (VECTOR_APP_ID, VECTOR_SELLER_ID)
    assert result.source is Source.NOTIFY
    # `+` sent as %2B is a plus, `+` on the wire is a space: decoded exactly once.
    assert result.raw["subject"] == "yansongda+测试 - 1"
    assert result.raw["fund_bill_list"] == '[{"amount":"0.01","fundChannel":"ALIPAYACCOUNT"}]'


def test_return_vector_verifies_but_is_never_a_payment() -> None:
    result = parse(RETURN, vector_account(), channel="return", method="GET")
    assert result.source is Source.RETURN
    assert (result.kind, result.status, result.provider_status) == (Kind.PAYMENT, Status.PENDING, "RETURN")
    assert not result.is_paid
    assert result.order_id == "1703141270"
    assert result.amount == Decimal("0.01")
    assert result.paid_at is None


def test_return_vector_also_verifies_when_posted() -> None:
    result = parse(RETURN, vector_account(), channel="return", method="POST")
    assert result.source is Source.RETURN


def test_return_vector_posted_to_notify_url_is_refused() -> None:
    # Same key and rule, so it verifies; but the buyer's browser saw it, so it must not count.
    with pytest.raises(MalformedNotification, match="not an async notification"):
        parse(RETURN, vector_account())


def test_vector_key_as_bare_base64_verifies() -> None:
    bare = "".join(line for line in vector_key().splitlines() if not line.startswith("-----"))
    assert parse(NOTIFY, vector_account(alipay_public_key=bare)).is_paid


def _flips(data: bytes) -> list[tuple[str, bytes]]:
    """Every single-byte change (xor 1) of every signed field value, as a re-encoded form."""
    items = pairs(data)
    out = []
    for index, (name, value) in enumerate(items):
        if name in UNSIGNED:
            continue
        for pos in range(len(value)):
            changed = value[:pos] + bytes([value[pos] ^ 0x01]) + value[pos + 1 :]
            copy = list(items)
            copy[index] = (name, changed)
            out.append((f"{name.decode()}[{pos}]", join(copy)))
    return out


def test_reencoding_untouched_pairs_still_verifies() -> None:
    # Validates the flip harness: only the flipped byte differs from the genuine vector.
    assert parse(join(pairs(NOTIFY)), vector_account()).order_id == "1703147160"
    assert parse(join(pairs(RETURN)), vector_account(), channel="return", method="GET").order_id


@pytest.mark.parametrize(
    ("data", "channel", "method", "expected_flips"),
    [(NOTIFY, "notify", "POST", 320), (RETURN, "return", "GET", 145)],
    ids=["notify", "return"],
)
def test_any_flipped_byte_of_any_signed_field_is_refused(
    data: bytes, channel: str, method: str, expected_flips: int
) -> None:
    acct = vector_account()
    flips = _flips(data)
    assert len(flips) >= expected_flips
    for label, changed in flips:
        with pytest.raises((VerificationError, MalformedNotification)) as info:
            parse(changed, acct, channel=channel, method=method)
        try:
            b"".join(v for _, v in pairs(changed)).decode("utf-8")
        except UnicodeDecodeError:
            continue  # a flip inside a multi-byte character is malformed utf-8, refused before the key
        if label.startswith("charset["):
            assert info.type is MalformedNotification, label  # "ttf-8" is no charset at all
        else:
            assert info.type is VerificationError, label


def test_flipped_sign_is_refused() -> None:
    items = pairs(NOTIFY)
    index = next(i for i, (k, _) in enumerate(items) if k == b"sign")
    sign = items[index][1]
    items[index] = (b"sign", sign[:10] + (b"A" if sign[10:11] != b"A" else b"B") + sign[11:])
    with pytest.raises(VerificationError):
        parse(join(items), vector_account())


def test_plus_must_not_be_read_as_a_literal_plus() -> None:
    # A decoder that left `%2B` alone, or turned `+` into `+`, would sign different text.
    as_space = NOTIFY.replace(b"yansongda%2B", b"yansongda+")
    with pytest.raises(VerificationError):
        parse(as_space, vector_account())
    plus_kept = NOTIFY.replace(b"%E8%AF%95+-+1", b"%E8%AF%95%2B-%2B1")
    with pytest.raises(VerificationError):
        parse(plus_kept, vector_account())


def test_sign_type_in_the_message_neither_counts_nor_downgrades() -> None:
    says_rsa = NOTIFY.replace(b"sign_type=RSA2", b"sign_type=RSA")
    assert says_rsa != NOTIFY
    assert parse(says_rsa, vector_account()).is_paid  # still verified with SHA-256 only
    without = NOTIFY.replace(b"&sign_type=RSA2", b"")
    assert parse(without, vector_account()).is_paid
    # An account configured for RSA (SHA-1) does not accept this SHA-256 signature.
    with pytest.raises(VerificationError, match=r"RSA \(SHA-1\)"):
        parse(NOTIFY, vector_account(sign_type="RSA"))


def test_appended_foreign_parameter_is_signed_over() -> None:
    with pytest.raises(VerificationError):
        parse(NOTIFY + b"&utm_source=mail", vector_account())
    with pytest.raises(VerificationError):
        parse(RETURN + b"&from=app", vector_account(), channel="return", method="GET")


def test_appended_empty_parameter_is_not_in_the_content() -> None:
    assert parse(NOTIFY + b"&memo=", vector_account()).raw["memo"] == ""


def test_removing_a_signed_field_is_refused() -> None:
    for name in (b"seller_id", b"buyer_id", b"total_amount"):
        items = [(k, v) for k, v in pairs(NOTIFY) if k != name]
        with pytest.raises(VerificationError):
            parse(join(items), vector_account())


async def test_vector_through_the_asgi_route() -> None:
    notifier = Notifier("memory://")
    notifier.add_account("sandbox", "alipay", app_id=VECTOR_APP_ID, alipay_public_key=vector_key())
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    transport = httpx.ASGITransport(app=notifier.asgi())
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        first = await client.post("/sandbox/notify", content=NOTIFY, headers=headers)
        again = await client.post("/sandbox/notify", content=NOTIFY, headers=headers)
        forged = await client.post(
            "/sandbox/notify",
            content=NOTIFY.replace(b"total_amount=0.01", b"total_amount=1.00"),
            headers=headers,
        )
        back = await client.get("/sandbox/return?" + RETURN.decode("ascii"))
    await notifier.aclose()
    assert (first.status_code, first.content) == (200, b"success")
    assert (again.status_code, again.content) == (200, b"success")
    assert (forged.status_code, forged.content) == (200, b"fail")
    assert back.status_code == 200
    assert back.content != b"success"
    assert b"1703141270" in back.content
    assert [r.order_id for r in seen] == ["1703147160"]
