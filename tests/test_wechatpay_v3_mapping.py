"""How verified, decrypted v3 resources become PaymentResults: the status table, amounts, times,
ids, raw, event ids, service-provider mode, and what is refused as malformed."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from _wechatpay_v3 import (
    APPID,
    MCHID,
    NOW,
    SP_APPID,
    SP_MCHID,
    SUB_MCHID,
    account,
    apiv3_key,
    certificate,
    parse,
    parse_result,
    payment,
    refund,
    sp_account,
)
from paynotify_wechatpay._v3_mapping import REFUND_STATUSES, TRADE_STATES, event_kind
from paynotify_wechatpay.testing import OPENID, make_v3_notify, sign_v3, v3_transaction_resource

from paynotify import (
    BEIJING,
    Kind,
    MalformedNotification,
    Status,
    UnhandledEvent,
    VerificationError,
    make_event_id,
)


@pytest.mark.parametrize(
    ("trade_state", "status"),
    [
        ("SUCCESS", Status.SUCCEEDED),
        ("REFUND", Status.SUCCEEDED),
        ("NOTPAY", Status.PENDING),
        ("USERPAYING", Status.PENDING),
        ("CLOSED", Status.CLOSED),
        ("REVOKED", Status.CLOSED),
        ("PAYERROR", Status.FAILED),
    ],
)
def test_trade_state_table(trade_state: str, status: Status) -> None:
    result = parse_result(payment(trade_state=trade_state))
    assert (result.kind, result.status, result.provider_status) == (Kind.PAYMENT, status, trade_state)
    assert result.is_paid is (status is Status.SUCCEEDED)
    assert TRADE_STATES.get(trade_state, Status.PENDING) is status


@pytest.mark.parametrize(
    ("refund_status", "status"),
    [
        ("SUCCESS", Status.SUCCEEDED),
        ("ABNORMAL", Status.FAILED),
        ("CLOSED", Status.CLOSED),
        ("PROCESSING", Status.PENDING),
    ],
)
def test_refund_status_table(refund_status: str, status: Status) -> None:
    result = parse_result(refund(refund_status=refund_status))
    assert (result.kind, result.status, result.provider_status) == (Kind.REFUND, status, refund_status)
    assert result.raw["event_type"] == f"REFUND.{refund_status}"
    assert (result.refunded_at is not None) is (status is Status.SUCCEEDED)
    assert not result.is_paid
    assert REFUND_STATUSES.get(refund_status, Status.PENDING) is status


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("TRANSACTION.SUCCESS", Kind.PAYMENT),
        ("TRANSACTION.FAIL", Kind.PAYMENT),
        ("REFUND.SUCCESS", Kind.REFUND),
        ("REFUND.ABNORMAL", Kind.REFUND),
        ("REFUND.CLOSED", Kind.REFUND),
        ("PAYSCORE.USER_OPEN_SERVICE", None),
        ("MCHTRANSFER.BILL.FINISHED", None),
        ("TRANSACTION", None),
        ("transaction.success", None),
    ],
)
def test_event_kind(event_type: str, kind: Kind | None) -> None:
    assert event_kind(event_type) is kind


def test_payment_fields() -> None:
    result = parse_result(payment(total=8888, out_trade_no="order-9", attach="测试"))
    assert result.provider == "wechatpay-v3"
    assert result.account == "shop"
    assert result.order_id == "order-9"
    assert result.transaction_id is not None
    assert result.transaction_id.startswith("4200000")
    assert result.amount == Decimal("88.88")
    assert str(result.amount) == "88.88"
    assert result.currency == "CNY"
    assert result.payer_id == OPENID
    assert (result.app_id, result.merchant_id) == (APPID, MCHID)
    assert result.key_id == certificate().key_id
    assert result.refund_id is None
    assert result.refund_amount is None
    assert result.paid_at is not None
    assert result.paid_at.utcoffset() == timedelta(hours=8)
    assert result.raw["attach"] == "测试"
    assert result.raw["amount"] == {
        "total": 8888,
        "payer_total": 8888,
        "currency": "CNY",
        "payer_currency": "CNY",
    }


def test_refund_fields() -> None:
    result = parse_result(refund(total=8888, refund_fee=1000, out_refund_no="refund-7"))
    assert result.order_id == "order-1"
    assert result.refund_id == "refund-7"
    assert result.provider_refund_id is not None
    assert result.provider_refund_id.startswith("50300")
    assert result.amount == Decimal("88.88")
    assert result.refund_amount == Decimal("10.00")
    assert result.merchant_id == MCHID
    assert result.app_id == APPID  # the account's: refund resources carry no appid
    assert "appid" not in result.raw
    assert result.raw["user_received_account"] == "支付用户零钱"
    assert result.key_id.startswith("PUB_KEY_ID_")  # type: ignore[union-attr]
    assert result.paid_at is None
    assert result.refunded_at is not None


@pytest.mark.parametrize(
    ("fen", "yuan"), [(1, "0.01"), (10, "0.10"), (100, "1.00"), (0, "0.00"), (10**17, "1000000000000000.00")]
)
def test_amounts_are_fen_to_decimal_yuan(fen: int, yuan: str) -> None:
    assert parse_result(payment(total=fen)).amount == Decimal(yuan)
    assert str(parse_result(payment(total=fen)).amount) == yuan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05+08:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=BEIJING)),
        ("2024-01-01T19:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=BEIJING)),
        ("2024-01-02T03:04:05.123+08:00", datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=BEIJING)),
    ],
)
def test_success_time_is_rfc3339_and_aware(text: str, expected: datetime) -> None:
    paid_at = parse_result(payment(success_time=text)).paid_at
    assert paid_at == expected
    assert paid_at is not None
    assert paid_at.tzinfo is not None


def test_other_currency() -> None:
    amount = {"total": 100, "payer_total": 700, "currency": "USD", "payer_currency": "CNY"}
    assert parse_result(payment(amount=amount)).currency == "USD"


def test_raw_is_the_resource_plus_the_envelope() -> None:
    headers, body = payment()
    result = parse_result((headers, body))
    assert result.raw["event_type"] == "TRANSACTION.SUCCESS"
    assert result.raw["resource_type"] == "encrypt-resource"
    assert result.raw["summary"] == "支付成功"
    assert isinstance(result.raw["id"], str)
    assert result.raw["out_trade_no"] == "order-1"
    assert "resource" not in result.raw  # the ciphertext is not kept, its plaintext is
    assert apiv3_key() not in repr(result.raw)


def test_event_id_is_the_same_for_a_resend_and_new_per_transition() -> None:
    first = parse_result(payment())
    resend = parse_result(payment(timestamp=NOW + 5))  # new nonce, new notification id, same transition
    assert first.raw["id"] != resend.raw["id"]
    assert first.event_id == resend.event_id
    assert first.event_id == make_event_id("shop", Kind.PAYMENT, first.transaction_id, None, "SUCCESS")
    refund_1 = parse_result(refund(out_refund_no="r-1"))
    assert refund_1.event_id == make_event_id("shop", Kind.REFUND, refund_1.transaction_id, "r-1", "SUCCESS")
    ids = {
        first.event_id,
        parse_result(payment(trade_state="REFUND")).event_id,
        refund_1.event_id,
        parse_result(refund(out_refund_no="r-2")).event_id,
        parse_result(refund(out_refund_no="r-1", refund_status="ABNORMAL")).event_id,
        parse_result(payment(), account("other-shop")).event_id,
    }
    assert len(ids) == 6


def test_unpaid_payment_without_transaction_id_is_keyed_by_out_trade_no() -> None:
    result = parse_result(payment(trade_state="NOTPAY"))
    assert result.transaction_id is None
    assert result.amount == Decimal("88.88")
    assert result.paid_at is None
    assert result.event_id == make_event_id("shop", Kind.PAYMENT, "order-1", None, "NOTPAY")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"out_trade_no": None}, "no out_trade_no"),
        ({"trade_state": None}, "no trade_state"),
        ({"transaction_id": None}, "no transaction_id"),
        ({"success_time": None}, "no success_time"),
        ({"amount": None}, "amount.total is None"),
        ({"amount": {"total": "8888"}}, "amount.total is '8888', not whole fen"),
        ({"amount": {"total": 88.88}}, "not whole fen"),
        ({"amount": {"total": True}}, "not whole fen"),
        ({"amount": {"total": -1}}, "not whole fen"),
        ({"amount": {"total": 10**18}}, "not whole fen"),
        ({"amount": [8888]}, "amount is not an object"),
        ({"success_time": "2024-01-02 03:04:05"}, "not RFC 3339"),
        ({"success_time": "2024-01-02T03:04:05"}, "not RFC 3339"),
        ({"success_time": "2024-13-02T03:04:05+08:00"}, "not RFC 3339"),
        ({"mchid": None}, "no mchid"),
        ({"appid": None}, "no appid"),
        ({"out_trade_no": 12345}, "out_trade_no is 12345, not a string"),
        ({"payer": "openid"}, "payer is not an object"),
    ],
)
def test_malformed_paid_transaction(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedNotification, match=match) as info:
        parse(payment(**extra))
    assert info.value.account == "shop"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"out_refund_no": None}, "no out_refund_no"),
        ({"refund_status": None}, "no refund_status"),
        ({"amount": {"total": 1}}, "amount.refund is None"),
        ({"success_time": "yesterday"}, "not RFC 3339"),
    ],
)
def test_malformed_refund(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedNotification, match=match):
        parse(refund(**extra))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "not JSON"),
        (b"[]", "a JSON list, not an object"),
        (b'{"event_type":"TRANSACTION.SUCCESS","resource":{}}', "no id"),
        (b'{"id":"1","resource":{}}', "no event_type"),
        (b'{"id":"1","event_type":"TRANSACTION.SUCCESS"}', "no resource object"),
        (b'{"id":"1","event_type":"TRANSACTION.SUCCESS","resource":"x"}', "no resource object"),
        (b'{"id":"1","event_type":"TRANSACTION.SUCCESS","resource":{"a":NaN}}', "not JSON"),
        (b'{"id":"1","event_type":"TRANSACTION.SUCCESS","resource":{}}', "no algorithm"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_malformed_envelopes_that_are_genuinely_signed(body: bytes, match: str) -> None:
    with pytest.raises(MalformedNotification, match=match):
        parse((sign_v3(body, certificate(), timestamp=NOW), body))


def test_a_decrypted_resource_that_is_not_json_is_malformed() -> None:
    notify = make_v3_notify(
        certificate(), apiv3_key(), b"not json", event_type="TRANSACTION.SUCCESS", timestamp=NOW
    )
    with pytest.raises(MalformedNotification, match="decrypted resource is not JSON"):
        parse(notify)


def test_other_event_types_that_do_not_decrypt_stay_unhandled_and_encrypted() -> None:
    notify = make_v3_notify(
        certificate(), "x" * 32, {"anything": 1}, event_type="PROFITSHARING.SUCCESS",
        notification_id="EV-1", timestamp=NOW,
    )  # fmt: skip
    event = parse(notify)  # encrypted with another key: kept encrypted, and never refused for it
    assert isinstance(event, UnhandledEvent)
    assert event.event_type == "PROFITSHARING.SUCCESS"
    assert event.event_id == make_event_id("shop", "event", "PROFITSHARING.SUCCESS", "EV-1")
    assert event.key_id == certificate().key_id
    assert event.raw["id"] == "EV-1"
    assert event.raw["resource"]["ciphertext"]


# Service-provider mode


def sp_payment(**extra: Any) -> tuple[dict[str, str], bytes]:
    values: dict[str, Any] = {"appid": SP_APPID, "mchid": SP_MCHID, "sub_mchid": SUB_MCHID}
    values.update(extra)
    return payment(**values)


def sp_refund(**extra: Any) -> tuple[dict[str, str], bytes]:
    values: dict[str, Any] = {"mchid": SP_MCHID, "sub_mchid": SUB_MCHID}
    values.update(extra)
    return refund(**values)


def test_service_provider_payment() -> None:
    result = parse_result(sp_payment(), sp_account())
    assert result.raw["sp_mchid"] == SP_MCHID
    assert result.app_id == SP_APPID
    assert result.merchant_id == SUB_MCHID  # the merchant whose order it is
    assert result.payer_id == OPENID  # payer.sp_openid
    assert result.event_id == make_event_id(
        "sp", Kind.PAYMENT, result.transaction_id, None, "SUCCESS", SUB_MCHID
    )


def test_service_provider_payer_is_sp_openid_else_sub_openid() -> None:
    both = parse_result(sp_payment(payer={"sp_openid": "sp-o", "sub_openid": "sub-o"}), sp_account())
    sub_only = parse_result(sp_payment(payer={"sub_openid": "sub-o"}), sp_account())
    assert (both.payer_id, sub_only.payer_id) == ("sp-o", "sub-o")
    assert parse_result(sp_payment(payer={}), sp_account()).payer_id is None


def test_service_provider_refund() -> None:
    result = parse_result(sp_refund(), sp_account())
    assert (result.app_id, result.merchant_id) == (SP_APPID, SUB_MCHID)
    assert result.kind is Kind.REFUND


def test_service_provider_expected_ids() -> None:
    assert sp_account().settings.expected_app_id() == SP_APPID
    assert sp_account().settings.expected_merchant_id() is None  # any sub-merchant of this provider
    assert sp_account(sub_mchid=SUB_MCHID).settings.expected_merchant_id() == SUB_MCHID
    assert (account().settings.expected_app_id(), account().settings.expected_merchant_id()) == (APPID, MCHID)


def test_sub_merchants_with_the_same_out_trade_no_are_different_events() -> None:
    a = parse_result(sp_payment(trade_state="CLOSED", sub_mchid="1900000201"), sp_account())
    b = parse_result(sp_payment(trade_state="CLOSED", sub_mchid="1900000202"), sp_account())
    assert a.order_id == b.order_id
    assert a.event_id != b.event_id


def test_service_provider_resource_for_another_sp_mchid_is_refused() -> None:
    with pytest.raises(VerificationError, match="sp_mchid '1900000999', this account is sp_mchid"):
        parse(sp_payment(mchid="1900000999"), sp_account())


def test_sub_appid_when_configured_must_be_on_payments() -> None:
    acct = sp_account(sub_appid="wx000000000000sub1")
    assert parse_result(sp_payment(sub_appid="wx000000000000sub1"), acct).app_id == SP_APPID
    with pytest.raises(VerificationError, match="sub_appid 'wx000000000000sub2', this account accepts"):
        parse(sp_payment(sub_appid="wx000000000000sub2"), acct)
    with pytest.raises(VerificationError, match="sub_appid None"):
        parse(sp_payment(), acct)
    assert parse_result(sp_refund(), acct).kind is Kind.REFUND  # refunds carry no appid at all


def test_direct_resource_on_a_service_provider_account_and_the_reverse_are_malformed() -> None:
    with pytest.raises(
        MalformedNotification, match=r"a direct merchant.s .* this account is a service provider.s"
    ):
        parse(payment(), sp_account())
    with pytest.raises(
        MalformedNotification, match=r"a service provider.s .* configure sp_mchid and sp_appid"
    ):
        parse(sp_payment(), account())
    with pytest.raises(MalformedNotification, match="no sp_mchid"):
        parse(sp_payment(mchid=None), sp_account())
    resource = v3_transaction_resource(appid=SP_APPID, mchid=SP_MCHID, sub_mchid=SUB_MCHID, out_trade_no="o")
    del resource["sub_mchid"]
    with pytest.raises(MalformedNotification, match="no sub_mchid"):
        parse(
            make_v3_notify(
                certificate(), apiv3_key(), resource, event_type="TRANSACTION.SUCCESS", timestamp=NOW
            ),
            sp_account(),
        )
