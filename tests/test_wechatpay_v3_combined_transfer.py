"""WeChat Pay v3 combined orders (合单支付) and merchant transfers (商家转账), signed and encrypted
with throwaway keys by the provider's own testing helpers, through the provider and the pipeline."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from _wechatpay_v3 import (
    APPID,
    MCHID,
    NOW,
    PROVIDER,
    apiv3_key,
    certificate,
    parse,
    parse_all,
    request,
    settings,
    sp_account,
)
from paynotify_wechatpay.testing import make_v3_notify

from paynotify import EventState, Kind, MalformedNotification, Notifier, PaymentResult, Status, UnhandledEvent

Notify = tuple[dict[str, str], bytes]
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def sub_order(order: str, *, state: str = "SUCCESS", total: int = 100, mchid: str = MCHID) -> dict[str, Any]:
    return {
        "mchid": mchid, "trade_type": "JSAPI", "trade_state": state, "bank_type": "CMC",
        "attach": "", "success_time": "2026-12-01T12:00:00+08:00", "out_trade_no": order,
        "transaction_id": f"4200000{abs(hash(order)) % 10**15:015d}"[:28],
        "amount": {"total_amount": total, "payer_amount": total, "currency": "CNY", "payer_currency": "CNY"},
    }  # fmt: skip


def combined(*subs: dict[str, Any], **changes: Any) -> Notify:
    resource: dict[str, Any] = {
        "combine_appid": APPID, "combine_mchid": MCHID, "combine_out_trade_no": "C-20261201-1",
        "combine_payer_info": {"openid": OPENID}, "sub_orders": list(subs),
        "scene_info": {"device_id": "POS1:1"},
    }  # fmt: skip
    resource.update(changes)
    return make_v3_notify(
        certificate(), apiv3_key(), resource, event_type="TRANSACTION.SUCCESS", timestamp=NOW,
        summary="支付成功",
    )  # fmt: skip


def transfer(state: str = "SUCCESS", **changes: Any) -> Notify:
    resource: dict[str, Any] = {
        "out_bill_no": "plfk2020042013", "transfer_bill_no": "1330000071100999991182020050700019480001",
        "state": state, "mch_id": MCHID, "transfer_amount": 2345, "openid": OPENID,
        "create_time": "2026-12-01T10:34:56+08:00", "update_time": "2026-12-01T10:35:20+08:00",
    }  # fmt: skip
    if state == "FAIL":
        resource["fail_reason"] = "PAYEE_ACCOUNT_ABNORMAL"
    resource.update(changes)
    return make_v3_notify(
        certificate(), apiv3_key(), resource, event_type="MCHTRANSFER.BILL.FINISHED",
        original_type="mch_payment", timestamp=NOW,
    )  # fmt: skip


def test_one_result_per_sub_order_each_its_own_event() -> None:
    first, second = parse_all(combined(sub_order("S-1", total=100), sub_order("S-2", total=2550)))
    assert [r.order_id for r in (first, second)] == ["S-1", "S-2"]
    assert (first.amount, second.amount) == (Decimal("1.00"), Decimal("25.50"))
    assert first.event_id != second.event_id
    for result in (first, second):
        assert (result.kind, result.status, result.provider_status) == (
            Kind.PAYMENT,
            Status.SUCCEEDED,
            "SUCCESS",
        )
        assert result.raw["combine_out_trade_no"] == "C-20261201-1"
        assert (result.payer_id, result.app_id, result.merchant_id) == (OPENID, APPID, MCHID)
        assert result.paid_at is not None
        assert result.is_paid
    assert second.raw["out_trade_no"] == "S-2"  # the sub-order's own fields win


def test_a_sub_order_state_maps_like_a_payment() -> None:
    paid, unpaid = parse_all(combined(sub_order("S-1"), sub_order("S-2", state="NOTPAY")))
    assert (paid.status, unpaid.status) == (Status.SUCCEEDED, Status.PENDING)


@pytest.mark.parametrize(
    "changes",
    [{"sub_orders": []}, {"sub_orders": "S-1"}, {"combine_mchid": None}],
    ids=["no sub-orders", "not a list", "no combine_mchid"],
)
def test_a_combined_order_out_of_shape_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedNotification):
        PROVIDER.parse(request(combined(sub_order("S-1"), **changes)), _account())


def test_a_service_providers_combined_order_is_offered_to_hooks_not_guessed() -> None:
    notify = make_v3_notify(
        certificate(), apiv3_key(),
        {"combine_appid": APPID, "combine_mchid": MCHID, "combine_out_trade_no": "C-1",
         "sub_orders": [sub_order("S-1")]},
        event_type="TRANSACTION.SUCCESS", timestamp=NOW,
    )  # fmt: skip
    event = PROVIDER.parse(request(notify), sp_account())
    assert isinstance(event, UnhandledEvent)
    assert event.raw["resource"]["combine_out_trade_no"] == "C-1"


async def test_a_combined_order_is_acknowledged_after_every_sub_order_and_a_resend_delivers_the_rest() -> (
    None
):
    n = Notifier("memory://")
    n.add_account("shop", PROVIDER, **settings())
    delivered: list[str] = []
    fail_once = {"S-2"}

    @n.subscribe(kind="payment", status="succeeded", name="ship")
    def ship(result: PaymentResult) -> None:
        if result.order_id in fail_once:
            fail_once.discard(result.order_id)
            raise RuntimeError("warehouse down")
        delivered.append(result.order_id)

    notify = combined(sub_order("S-1"), sub_order("S-2"), sub_order("S-3"))
    assert (await n.handle("shop", request(notify))).status == 500  # S-2 failed: WeChat resends
    assert delivered == ["S-1"]
    assert (await n.handle("shop", request(notify))).status == 204
    assert delivered == ["S-1", "S-2", "S-3"]  # S-1 not again
    assert {e.state for e in await n.store.find()} == {EventState.DONE}


@pytest.mark.parametrize(
    ("state", "status"),
    [("SUCCESS", Status.SUCCEEDED), ("FAIL", Status.FAILED), ("CANCELLED", Status.CLOSED),
     ("PROCESSING", Status.PENDING), ("WAIT_USER_CONFIRM", Status.PENDING)],
)  # fmt: skip
def test_a_merchant_transfer_is_a_transfer(state: str, status: Status) -> None:
    result = parse(transfer(state))
    assert isinstance(result, PaymentResult)
    assert (result.kind, result.status, result.provider_status) == (Kind.TRANSFER, status, state)
    assert result.order_id == "plfk2020042013"
    assert result.transaction_id == "1330000071100999991182020050700019480001"
    assert result.amount == Decimal("23.45")
    assert (result.payer_id, result.merchant_id, result.app_id) == (OPENID, MCHID, APPID)
    assert (result.paid_at is not None) == (state == "SUCCESS")
    assert not result.is_paid  # a transfer is money sent, never an order paid


def test_a_transfer_without_an_amount_in_fen_is_refused() -> None:
    with pytest.raises(MalformedNotification, match="transfer_amount"):
        parse(transfer(transfer_amount="23.45"))


async def test_subscribers_can_filter_on_transfers() -> None:
    n = Notifier("memory://")
    n.add_account("shop", PROVIDER, **settings())
    transfers: list[PaymentResult] = []
    payments: list[PaymentResult] = []
    n.subscribe(transfers.append, kind="transfer", name="transfers")
    n.subscribe(payments.append, kind="payment", name="payments")
    assert (await n.handle("shop", request(transfer()))).status == 204
    assert [r.kind for r in transfers] == [Kind.TRANSFER]
    assert payments == []


def _account() -> Any:
    from _wechatpay_v3 import account

    return account()
