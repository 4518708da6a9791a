"""WeChat Pay v3 kinds beyond payments and refunds, on genuine content (tests/vectors/wechatpay/
v3_resources, decrypted resources published by other projects; PROVENANCE.md): each is encrypted
and signed here with throwaway keys by the provider's testing helpers and run through a Notifier,
and must be answered with success (204) and recorded with the right state and kind.

- profit sharing's 分账动账通知, sent as TRANSACTION.SUCCESS with original_type `profitsharing`
  (told apart by its shape as well): unhandled PROFITSHARING.TRANSACTION.SUCCESS, never a payment;
- MCHTRANSFER.BILL.FINISHED: a transfer; MCHTRANSFER.BATCH.* and .AUTHORIZATION.*: unhandled;
- COMPLAINT.*: unhandled, offered to hooks with the decrypted resource;
- a combined order: one payment per sub-order, its sub-orders held to the single payment's rules.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _wechatpay_v3 import NOW, PROVIDER, apiv3_key, certificate, public_key, request, settings
from paynotify_wechatpay.testing import make_v3_notify

from paynotify import EventState, Kind, Notifier, PaymentResult, Status, UnhandledEvent

RESOURCES = Path(__file__).parent / "vectors" / "wechatpay" / "v3_resources"
Notify = tuple[dict[str, str], bytes]


def resource(name: str) -> dict[str, Any]:
    """A vector's decrypted resource, as published (one of them starts with a UTF-8 BOM: the file's,
    not WeChat Pay's)."""
    value: dict[str, Any] = json.loads((RESOURCES / name).read_text(encoding="utf-8-sig"))
    return value


def notify(body: dict[str, Any], event_type: str, original_type: str, *, summary: str = "") -> Notify:
    return make_v3_notify(
        public_key(), apiv3_key(), body, event_type=event_type, original_type=original_type,
        timestamp=NOW, summary=summary,
    )  # fmt: skip


def notifier(**overrides: Any) -> tuple[Notifier, list[PaymentResult], list[UnhandledEvent]]:
    n = Notifier("memory://")
    n.add_account("shop", PROVIDER, **settings(**overrides))
    delivered: list[PaymentResult] = []
    offered: list[UnhandledEvent] = []
    n.subscribe(delivered.append, name="all")
    n.on_unhandled(offered.append)
    return n, delivered, offered


async def handled(n: Notifier, message: Notify) -> Any:
    reply = await n.handle("shop", request(message))
    assert (reply.status, reply.body) == (204, b"")
    (event,) = await n.store.find()
    return event


PROFIT_SHARING = [
    ("profitsharing.json", "profitsharing"),  # direct merchant: mchid
    ("profitsharing_partner.json", "profitsharing"),  # service provider: sp_mchid, sub_mchid
    ("profitsharing.json", "transaction"),  # original_type a payment's: told apart by its shape
]


@pytest.mark.parametrize(("name", "original_type"), PROFIT_SHARING)
async def test_profit_sharing_sent_as_transaction_success_is_recorded_unhandled_never_a_payment(
    name: str, original_type: str
) -> None:
    n, delivered, offered = notifier()
    body = resource(name)
    event = await handled(n, notify(body, "TRANSACTION.SUCCESS", original_type, summary="分账动账"))
    assert (event.state, event.kind, event.status) == (
        EventState.UNHANDLED,
        "unhandled",
        "PROFITSHARING.TRANSACTION.SUCCESS",
    )
    assert delivered == []
    (hooked,) = offered
    assert hooked.event_type == "PROFITSHARING.TRANSACTION.SUCCESS"
    assert hooked.raw["event_type"] == "TRANSACTION.SUCCESS"  # what WeChat Pay sent
    assert hooked.raw["resource"] == body  # decrypted, for the hook
    assert hooked.raw["resource"]["receiver"]["amount"] == 888


async def test_profit_sharing_with_its_own_event_type_is_unhandled_with_that_type() -> None:
    n, delivered, offered = notifier()
    event = await handled(n, notify(resource("profitsharing.json"), "PROFITSHARING.SUCCESS", "profitsharing"))
    assert (event.state, event.status) == (EventState.UNHANDLED, "PROFITSHARING.SUCCESS")
    assert delivered == []
    assert offered[0].raw["resource"]["out_order_no"] == "P20150806125346"


async def test_a_transfer_bill_as_published_is_a_pending_transfer() -> None:
    body = resource("mchtransfer_bill_finished.json")  # state ACCEPTED, mchid (not mch_id)
    n, delivered, offered = notifier(mchid=body["mchid"])
    event = await handled(n, notify(body, "MCHTRANSFER.BILL.FINISHED", "mch_payment"))
    assert (event.state, event.kind, event.status) == (EventState.DONE, "transfer", "pending")
    (result,) = delivered
    assert (result.kind, result.status, result.provider_status) == (Kind.TRANSFER, Status.PENDING, "ACCEPTED")
    assert (result.order_id, result.amount, result.merchant_id) == (
        "plfk2020042013",
        Decimal("4000.00"),
        "1900001109",
    )
    assert result.payer_id == "o-MYE42l80oelYMDE34nYD456Xoy"
    assert offered == []


async def test_the_same_bill_finished_is_a_succeeded_transfer() -> None:
    body = {**resource("mchtransfer_bill_finished.json"), "state": "SUCCESS", "fail_reason": ""}
    n, delivered, _ = notifier(mchid=body["mchid"])
    event = await handled(n, notify(body, "MCHTRANSFER.BILL.FINISHED", "mch_payment"))
    assert (event.state, event.kind, event.status) == (EventState.DONE, "transfer", "succeeded")
    assert delivered[0].paid_at is not None
    assert delivered[0].paid_at.isoformat() == "2015-05-20T13:29:35.120000+08:00"


@pytest.mark.parametrize(
    ("name", "event_type"),
    [
        ("mchtransfer_batch_finished.json", "MCHTRANSFER.BATCH.FINISHED"),
        ("mchtransfer_batch_closed.json", "MCHTRANSFER.BATCH.CLOSED"),
        ("mchtransfer_authorization_confirmed.json", "MCHTRANSFER.AUTHORIZATION.CONFIRMED"),
    ],
)
async def test_other_merchant_transfer_events_are_unhandled_with_their_type(
    name: str, event_type: str
) -> None:
    body = resource(name)
    n, delivered, offered = notifier()
    event = await handled(n, notify(body, event_type, "mch_payment"))
    assert (event.state, event.kind, event.status) == (EventState.UNHANDLED, "unhandled", event_type)
    assert delivered == []
    assert offered[0].raw["resource"] == body


@pytest.mark.parametrize("event_type", ["COMPLAINT.CREATE", "COMPLAINT.STATE_CHANGE"])
async def test_a_complaint_is_offered_to_hooks_with_its_decrypted_resource(event_type: str) -> None:
    body = resource("complaint.json")
    n, delivered, offered = notifier()
    event = await handled(n, notify(body, event_type, "payscore"))
    assert (event.state, event.status) == (EventState.UNHANDLED, event_type)
    assert delivered == []
    assert offered[0].raw["resource"] == {"complaint_id": "200201820200101080076610000",
                                          "action_type": "CREATE_COMPLAINT"}  # fmt: skip


async def test_a_combined_order_as_published_is_one_payment_per_sub_order() -> None:
    body = resource("combined_transaction.json")
    n, delivered, _ = notifier(mchid=body["combine_mchid"], appid=body["combine_appid"])
    event = await handled(n, notify(body, "TRANSACTION.SUCCESS", "transaction", summary="支付成功"))
    assert (event.state, event.kind, event.status) == (EventState.DONE, "payment", "succeeded")
    (result,) = delivered
    assert (result.order_id, result.transaction_id, result.amount) == (
        "20150806125346",
        "1009660380201506130728806387",
        Decimal("0.10"),
    )
    assert result.payer_id == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    assert result.is_paid


def _sub_order_changed(**changes: Any) -> dict[str, Any]:
    body = resource("combined_transaction.json")
    body["sub_orders"][0].update(changes)
    return body


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"trade_state": "MAYBE"}, "trade_state is 'MAYBE', not one of"),
        ({"transaction_id": "not-digits!"}, "transaction_id is 'not-digits!', not 1-32 digits"),
        ({"out_trade_no": "a b"}, "out_trade_no is 'a b', not 1-32"),
        ({"amount": {"total_amount": "10", "currency": "CNY"}}, "total_amount is '10', not whole fen"),
        ({"success_time": "yesterday"}, "success_time is 'yesterday', not RFC 3339"),
    ],
    ids=["state", "transaction_id", "out_trade_no", "amount", "success_time"],
)
async def test_a_sub_order_out_of_shape_is_recorded_rejected_like_a_single_payment(
    changes: dict[str, Any], reason: str
) -> None:
    body = _sub_order_changed(**changes)
    n, delivered, _ = notifier(mchid=body["combine_mchid"], appid=body["combine_appid"])
    event = await handled(n, notify(body, "TRANSACTION.SUCCESS", "transaction"))
    assert event.state is EventState.REJECTED
    assert event.last_error is not None
    assert reason in event.last_error
    assert "sub_orders[0]" in event.last_error
    assert delivered == []
    # The single payment with the same values is refused the same way.
    single = {**{k: v for k, v in body["sub_orders"][0].items() if k != "amount"},
              "appid": body["combine_appid"], "amount": {"total": 10, "currency": "CNY"}}  # fmt: skip
    if "amount" in changes:
        single["amount"] = {"total": "10", "currency": "CNY"}
    n2, delivered2, _ = notifier(mchid=body["combine_mchid"], appid=body["combine_appid"])
    event2 = await handled(n2, notify(single, "TRANSACTION.SUCCESS", "transaction"))
    assert event2.state is EventState.REJECTED
    assert delivered2 == []
    assert event2.last_error is not None
    assert reason.replace("total_amount", "total") in event2.last_error


async def test_a_combined_order_resent_after_refusal_is_refused_again_not_delivered() -> None:
    body = _sub_order_changed(trade_state="MAYBE")
    n, delivered, _ = notifier(mchid=body["combine_mchid"], appid=body["combine_appid"])
    message = notify(body, "TRANSACTION.SUCCESS", "transaction")
    for _ in range(2):
        assert (await n.handle("shop", request(message))).status == 204
    assert delivered == []
    assert {e.state for e in await n.store.find()} == {EventState.REJECTED}


def test_the_vectors_are_the_published_bytes() -> None:
    # A guard against an edit: the ids these tests rely on, as the sources published them.
    assert resource("profitsharing.json")["transaction_id"] == "4200000000000000000000000000"
    assert (
        resource("mchtransfer_batch_finished.json")["batch_id"]
        == "131000007026709999520922023081519403795655"
    )
    assert (RESOURCES / "complaint.json").read_bytes().startswith(b"\xef\xbb\xbf{")
    assert certificate() is not None  # the account trusts both key modes; the vectors use the public key
