"""Alipay messages that are not trades, on genuine content: fund authorization (预授权) notifications
as Alipay sent them (tests/vectors/alipay/fund_auth_*.fields.json, PROVENANCE.md), re-signed here
with a throwaway key (their own signatures are Alipay's, whose key is not published), and a
message-service message (msg_method, no notify_type). Each goes through a Notifier: answered
`success`, recorded `unhandled` typed by what it is, offered to on_unhandled hooks, never a payment."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _alipay_keys import VECTORS, key, pem
from paynotify_alipay import AlipayProvider
from paynotify_alipay._signature import sign, sign_content
from paynotify_alipay.testing import encode_form, sign_fields

from paynotify import EventState, InboundRequest, Notifier, PaymentResult, UnhandledEvent

APP_ID = "2018060601228996"  # the vectors' app_id


def genuine(name: str) -> dict[str, str]:
    fields: dict[str, str] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return fields


def signed(fields: dict[str, str], rule: str, sign_type: str) -> bytes:
    """`fields` without their own sign, signed with the throwaway key under `rule` (V1: sign_type left
    out of the signed content, as trade notifications; V2: kept in, as open-platform messages)."""
    present = {k: v for k, v in fields.items() if k != "sign"}
    if rule == "V1":
        present["sign"] = sign_fields(present, key(), sign_type)  # type: ignore[arg-type]
    else:
        raw = {k.encode(): v.encode() for k, v in present.items()}
        present["sign"] = sign(sign_content(raw, "V2"), key(), sign_type)  # type: ignore[arg-type]
    return encode_form(present)


def notifier(sign_type: str = "RSA") -> tuple[Notifier, list[PaymentResult], list[UnhandledEvent]]:
    n = Notifier("memory://")
    n.add_account("shop", AlipayProvider(), app_id=APP_ID, alipay_public_key=pem(), sign_type=sign_type)
    delivered: list[PaymentResult] = []
    offered: list[UnhandledEvent] = []
    n.subscribe(delivered.append, name="all")
    n.on_unhandled(offered.append)
    return n, delivered, offered


async def handled(n: Notifier, body: bytes) -> Any:
    reply = await n.handle("shop", InboundRequest("POST", "notify", {}, b"", body))
    assert (reply.status, reply.body) == (200, b"success")
    (event,) = await n.store.find()
    return event


@pytest.mark.parametrize("rule", ["V1", "V2"])
@pytest.mark.parametrize(
    ("name", "notify_type", "operation"),
    [
        ("fund_auth_freeze.fields.json", "fund_auth_freeze", "FREEZE"),
        ("fund_auth_unfreeze.fields.json", "fund_auth_unfreeze", "UNFREEZE"),
    ],
)
async def test_a_fund_authorization_notification_is_recorded_unhandled_with_its_type(
    name: str, notify_type: str, operation: str, rule: str
) -> None:
    fields = genuine(name)
    n, delivered, offered = notifier()  # the vectors' merchant signs with RSA (SHA-1)
    event = await handled(n, signed(fields, rule, "RSA"))
    assert (event.state, event.kind, event.status) == (EventState.UNHANDLED, "unhandled", notify_type)
    assert delivered == []
    (hooked,) = offered
    assert hooked.event_type == notify_type
    assert (hooked.raw["auth_no"], hooked.raw["operation_type"]) == (
        "2019062110002001000281886861",
        operation,
    )
    assert hooked.raw["amount"] == "500.00"
    assert (
        await n.handle("shop", InboundRequest("POST", "notify", {}, b"", signed(fields, rule, "RSA")))
    ).body == (b"success")
    assert len(await n.store.find()) == 1  # a resend is the same event


async def test_fund_authorization_operation_cancel_is_typed_too() -> None:
    fields = {**genuine("fund_auth_unfreeze.fields.json"), "notify_type": "fund_auth_operation_cancel",
              "action": "unfreeze"}  # fmt: skip
    n, _, offered = notifier()
    event = await handled(n, signed(fields, "V1", "RSA"))
    assert (event.state, event.status) == (EventState.UNHANDLED, "fund_auth_operation_cancel")
    assert offered[0].raw["action"] == "unfreeze"


def depositback() -> dict[str, str]:
    """A message-service message (收单退款冲退完成通知): msg_method names it, there is no notify_type."""
    return {
        "msg_method": "alipay.trade.refund.depositback.completed",
        "app_id": APP_ID,
        "notify_id": "2024121700262150959010001413838412",
        "utc_timestamp": "1734400000000",
        "version": "1.1",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "biz_content": json.dumps(
            {"trade_no": "2024121722001400000000000001", "out_trade_no": "o-1", "out_request_no": "r-1",
             "dback_status": "S", "dback_amount": "1.00", "bank_ack_time": "2024-12-17 10:00:00",
             "est_bank_receipt_time": "2024-12-17 10:00:00"},
            ensure_ascii=False,
        ),
    }  # fmt: skip


@pytest.mark.parametrize("rule", ["V1", "V2"])
async def test_a_message_service_message_is_typed_by_its_msg_method(rule: str) -> None:
    n, delivered, offered = notifier("RSA2")
    event = await handled(n, signed(depositback(), rule, "RSA2"))
    assert (event.state, event.status) == (EventState.UNHANDLED, "alipay.trade.refund.depositback.completed")
    assert delivered == []
    assert json.loads(offered[0].raw["biz_content"])["dback_status"] == "S"


async def test_a_message_service_message_with_a_changed_byte_is_refused() -> None:
    n, _, offered = notifier("RSA2")
    body = signed(depositback(), "V2", "RSA2").replace(b"dback_amount", b"dback_amounT")
    reply = await n.handle("shop", InboundRequest("POST", "notify", {}, b"", body))
    assert reply.body == b"fail"
    assert offered == []
    assert await n.store.find() == []
