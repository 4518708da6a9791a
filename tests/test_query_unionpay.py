"""UnionPay queries (queryTrans.do) against the emulator: signed with the merchant's .pfx, answers verified
like notifications (the CFCA chain), origRespCode read through the notification mapping (same
event_id); forged, re-serialised, unsigned, not found, timed out, down and slow."""

from __future__ import annotations

import asyncio
import base64
import functools
from pathlib import Path
from typing import Any

import pytest
from _query_emulator_send import app_client, emulator_send
from paynotify_unionpay import UnionPayProvider, UnionPaySettings
from paynotify_unionpay._emulator import MerchantCertificate, generate_merchant_certificate
from paynotify_unionpay.testing import SigningChain, UnionPayEmulator, generate_chain

from paynotify import (
    Account,
    ConfigurationError,
    InboundRequest,
    Kind,
    MemoryStore,
    Notifier,
    PaymentResult,
    ProviderApiError,
    ProviderUnavailable,
    Source,
    Status,
    VerificationError,
)

PROVIDER = UnionPayProvider()
API = PROVIDER.api()


@functools.cache
def chain() -> SigningChain:
    return generate_chain()


@functools.cache
def merchant(name: str = "a") -> MerchantCertificate:
    return generate_merchant_certificate()


def emulator(**options: Any) -> UnionPayEmulator:
    values: dict[str, Any] = {"chain": chain(), "merchant": merchant()}
    values.update(options)
    return UnionPayEmulator(**values)


def account_of(emu: UnionPayEmulator, name: str = "shop", **overrides: Any) -> Account[UnionPaySettings]:
    settings = {**emu.account_settings(), **overrides}
    return Account(name, PROVIDER, UnionPaySettings(**{k: v for k, v in settings.items() if v is not None}))


def notified(
    emu: UnionPayEmulator, acct: Account[UnionPaySettings], transaction: dict[str, str]
) -> PaymentResult:
    request = InboundRequest("POST", "notify", {}, body=emu.notification(transaction))
    result = PROVIDER.parse(request, acct)
    assert isinstance(result, PaymentResult)
    return result


def same_state(queried: PaymentResult, notified: PaymentResult) -> None:
    assert queried.source is Source.QUERY
    assert queried.event_id == notified.event_id
    ignore = {"source", "raw"}
    assert queried.model_dump(exclude=ignore) == notified.model_dump(exclude=ignore)


async def test_a_paid_consume_queried_is_the_event_its_notification_is() -> None:
    emu = emulator()
    acct = account_of(emu)
    paid = emu.pay("order20260101001", txn_amt="8888")
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "order20260101001", at=emu.txn_time(paid))
    assert answer.result is not None
    same_state(answer.result, notified(emu, acct, paid))
    assert (answer.result.kind, answer.result.status, str(answer.result.amount)) == (
        Kind.PAYMENT, Status.SUCCEEDED, "88.88",
    )  # fmt: skip
    assert answer.result.key_id == chain().cert_id
    assert answer.raw["respCode"] == "00"
    assert answer.raw["origRespCode"] == "00"
    request = emu.requests[0]
    names = ("version", "signMethod", "txnType", "txnSubType", "bizType", "accessType")
    assert {k: request[k] for k in names} == {
        "version": "5.1.0", "signMethod": "01", "txnType": "00", "txnSubType": "00", "bizType": "000000",
        "accessType": "0",
    }  # fmt: skip
    assert (request["certId"], request["txnTime"]) == (merchant().cert_id, paid["txnTime"])


@pytest.mark.parametrize("code", ["03", "04", "05"])
async def test_an_unknown_result_is_pending_like_its_notification(code: str) -> None:
    emu = emulator()
    acct = account_of(emu)
    paying = emu.pay("order20260101002", resp_code=code)
    async with emulator_send(emu) as send:
        answer = await API.query_payment(send, acct, "order20260101002", at=emu.txn_time(paying))
    assert answer.result is not None
    assert answer.result.status is Status.PENDING
    same_state(answer.result, notified(emu, acct, paying))


@pytest.mark.parametrize("txn_type", ["04", "31"])
async def test_a_refund_queried_is_the_event_its_notification_is(txn_type: str) -> None:
    emu = emulator()
    acct = account_of(emu)
    emu.pay("order20260101003")
    refund = emu.refund("order20260101003R1", "order20260101003", txn_amt="1000", txn_type=txn_type)
    async with emulator_send(emu) as send:
        answer = await API.query_refund(send, acct, "order20260101003R1", at=emu.txn_time(refund))
    assert answer.result is not None
    assert answer.result.kind is Kind.REFUND
    same_state(answer.result, notified(emu, acct, refund))


async def test_not_found_is_an_answer_without_a_result() -> None:
    emu = emulator()
    async with emulator_send(emu) as send:
        answer = await API.query_payment(
            send, account_of(emu), "order20260101404", at=emu.txn_time(emu.pay("x" * 8))
        )
    assert (answer.found, answer.raw["respCode"]) == (False, "34")


async def test_the_original_time_is_required() -> None:
    emu = emulator()
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="needs the transaction's txnTime"):
            await API.query_payment(send, account_of(emu), "order20260101001")
    assert emu.requests == []


def _changed_amount(body: bytes) -> bytes:
    changed = body.replace(b"txnAmt=8888", b"txnAmt=1")
    assert changed != body
    return changed


async def test_a_forged_answer_is_refused() -> None:
    emu = emulator()
    paid = emu.pay("order20260101005")
    emu.tamper = _changed_amount
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="does not verify") as caught:
            await API.query_payment(send, account_of(emu), "order20260101005", at=emu.txn_time(paid))
    assert caught.value.account == "shop"


async def test_a_reserialised_answer_is_refused() -> None:
    emu = emulator()
    paid = emu.pay("order20260101006")
    # respMsg re-encoded the way a framework's form parser would hand it back: a space instead of
    # the byte UnionPay signed (its GBK/UTF-8 text survives, the signed bytes do not).
    emu.tamper = lambda body: body.replace(
        b"respMsg=%E6%88%90%E5%8A%9F%5B0000000%5D", b"respMsg=%E6%88%90%E5%8A%9F+%5B0000000%5D"
    )
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="does not verify"):
            await API.query_payment(send, account_of(emu), "order20260101006", at=emu.txn_time(paid))


async def test_an_unsigned_answer_is_refused() -> None:
    emu = emulator()
    paid = emu.pay("order20260101007")
    emu.unsigned = True
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError, match="no signature"):
            await API.query_payment(send, account_of(emu), "order20260101007", at=emu.txn_time(paid))


async def test_an_answer_signed_outside_the_trusted_chain_is_refused() -> None:
    emu = emulator(chain=generate_chain())  # another CA: the account trusts chain() only
    paid = emu.pay("order20260101008")
    acct = account_of(emu, **chain().account_settings())
    async with emulator_send(emu) as send:
        with pytest.raises(VerificationError):
            await API.query_payment(send, acct, "order20260101008", at=emu.txn_time(paid))


async def test_a_query_timed_out_at_unionpay_is_unavailable() -> None:
    emu = emulator()
    paid = emu.pay("order20260101009")
    emu.answer_code = "04"
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderUnavailable, match="respCode 04"):
            await API.query_payment(send, account_of(emu), "order20260101009", at=emu.txn_time(paid))


async def test_the_provider_down_or_slow_is_unavailable() -> None:
    emu = emulator()
    paid = emu.pay("order20260101010")
    acct = account_of(emu)
    emu.down = True
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderUnavailable, match="HTTP 503"):
            await API.query_payment(send, acct, "order20260101010", at=emu.txn_time(paid))
    emu.down = False
    emu.stall = asyncio.Event()
    async with emulator_send(emu, deadline=0.05) as send:
        with pytest.raises(ProviderUnavailable, match="no answer"):
            await API.query_payment(send, acct, "order20260101010", at=emu.txn_time(paid))


async def test_a_request_signed_with_another_key_is_refused_unsigned_and_not_believed() -> None:
    emu = emulator()
    paid = emu.pay("order20260101011")
    other = merchant("other")
    acct = account_of(
        emu, signing_pfx=base64.b64encode(other.pfx).decode(), signing_pfx_password=other.password
    )
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="respCode '11', unsigned") as caught:
            await API.query_payment(send, acct, "order20260101011", at=emu.txn_time(paid))
    assert caught.value.code == "11"


def test_signing_pfx_settings_are_checked_and_secret(tmp_path: Path) -> None:
    emu = emulator()
    base = emu.account_settings()
    notifier = Notifier()
    with pytest.raises(ConfigurationError, match="wrong signing_pfx_password"):
        notifier.add_account("a", "unionpay", **{**base, "signing_pfx_password": "wrong"})
    with pytest.raises(ConfigurationError, match="signing_pfx"):
        notifier.add_account("b", "unionpay", **{k: v for k, v in base.items() if k != "signing_pfx"})
    pfx = tmp_path / "acp_test_sign.pfx"
    pfx.write_bytes(merchant().pfx)
    from_path = notifier.add_account("c", "unionpay", **{**base, "signing_pfx": str(pfx)})
    assert from_path.settings.signing is not None
    assert from_path.settings.signing.cert_id == merchant().cert_id
    assert merchant().password not in repr(from_path.settings)
    assert API.can_query(from_path)
    plain = notifier.add_account("d", "unionpay", mer_id=emu.mer_id, environment="test")
    assert not API.can_query(plain)
    assert plain.settings.api_base_url == "https://gateway.test.95516.com"


async def test_a_dropped_notification_queried_then_resent_is_one_event() -> None:
    emu = emulator()
    paid = emu.pay("order20260101012")
    delivered: list[PaymentResult] = []
    notifier = Notifier(MemoryStore())
    notifier.add_account("shop", PROVIDER, **emu.account_settings())
    notifier.subscribe(delivered.append)
    async with notifier, emulator_send(emu) as send, app_client(notifier.asgi()) as client:
        assert await emu.push(client, "/shop/notify", paid, drop=True) == []
        answer = await API.query_payment(
            send, notifier.accounts["shop"], "order20260101012", at=emu.txn_time(paid)
        )
        assert answer.result is not None
        # The late notification of that state has the query's event_id: the store keeps it to one.
        assert await emu.push(client, "/shop/notify", paid, copies=2) == [200, 200]
    assert len(delivered) == 1
    assert delivered[0].event_id == answer.result.event_id


async def test_an_unsigned_not_found_is_not_believed() -> None:
    emu = emulator()
    emu.unsigned = True
    at = emu.txn_time(emu.pay("order20260101013"))
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="respCode '34', unsigned"):
            await API.query_payment(send, account_of(emu), "order20260101404", at=at)


async def test_a_genuine_answer_about_another_transaction_does_not_stand_for_this_one() -> None:
    emu = emulator()
    paid = emu.pay("order20260101014")
    at = emu.txn_time(paid)
    emu.transactions[("order20260101015", paid["txnTime"])] = paid  # a replayed answer
    async with emulator_send(emu) as send:
        with pytest.raises(ProviderApiError, match="asked about orderId 'order20260101015'"):
            await API.query_payment(send, account_of(emu), "order20260101015", at=at)
