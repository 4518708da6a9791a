"""A WeChat Pay v3 merchant transfer (商家转账) bill result, MCHTRANSFER.BILL.FINISHED, as a `transfer`.

Only that event type is one transfer bill. The other MCHTRANSFER.* events (the older batch
transfers' MCHTRANSFER.BATCH.FINISHED / BATCH.CLOSED, a batch of many bills with totals; the
authorization events MCHTRANSFER.AUTHORIZATION.*) are not one transfer: they are verified,
decrypted and recorded as unhandled events with their own type (`_v3_provider`).

Resource: mchid (the documents' name; `mch_id` accepted too), out_bill_no, transfer_bill_no, state,
transfer_amount (fen), openid, fail_reason, create_time, update_time.

| state                                                         | status    |
|---------------------------------------------------------------|-----------|
| SUCCESS                                                       | succeeded |
| FAIL                                                          | failed    |
| CANCELLED                                                     | closed    |
| ACCEPTED, PROCESSING, WAIT_USER_CONFIRM, TRANSFERING, CANCELING | pending   |
| another value                                                 | InvalidContent, never a result |

order_id = out_bill_no, transaction_id = transfer_bill_no, amount = transfer_amount / 100, payer_id =
openid (the user who received it), merchant_id = mchid, paid_at = update_time when SUCCESS. A
transfer resource carries no appid: app_id is the account's own, so the merchant check decides (as
for refunds). event_id = account + transfer + transfer_bill_no (or out_bill_no) + state. A resource
out of shape raises InvalidContent (recorded `rejected`, acknowledged) with that event_id.
"""

from __future__ import annotations

from paynotify import InvalidContent, Kind, MalformedNotification, PaymentResult, Status, make_event_id
from paynotify_wechatpay._v3_envelope import Envelope
from paynotify_wechatpay._v3_mapping import (
    Account3,
    Resource,
    _optional,
    _raw,
    _required,
    _state,
    _time,
    _yuan,
)

__all__ = ["TRANSFER_EVENT", "TRANSFER_STATES", "is_transfer", "transfer_result"]

TRANSFER_EVENT = "MCHTRANSFER.BILL.FINISHED"
TRANSFER_STATES = {
    "SUCCESS": Status.SUCCEEDED,
    "FAIL": Status.FAILED,
    "CANCELLED": Status.CLOSED,
    "ACCEPTED": Status.PENDING,
    "PROCESSING": Status.PENDING,
    "WAIT_USER_CONFIRM": Status.PENDING,
    "TRANSFERING": Status.PENDING,
    "CANCELING": Status.PENDING,
}


def is_transfer(event_type: str) -> bool:
    """True for the one event type that is a single transfer bill (never a prefix test)."""
    return event_type == TRANSFER_EVENT


def transfer_result(
    account: Account3, envelope: Envelope, resource: Resource, *, provider: str, key_id: str
) -> PaymentResult:
    try:
        state = _state(resource, "state", TRANSFER_STATES)
        order_id = _required(resource, "out_bill_no")
        bill = _optional(resource, "transfer_bill_no")
        succeeded = state == "SUCCESS"
        merchant = _optional(resource, "mchid") or _required(resource, "mch_id")
        amount = _yuan(resource, "transfer_amount", required=True)
        paid_at = _time(resource, "update_time", required=True) if succeeded else None
        payer = _optional(resource, "openid")
    except MalformedNotification as exc:
        raise InvalidContent(
            exc.message,
            account=account.name,
            raw=_raw(envelope, resource),
            event_id=_refused_event_id(account, resource),
        ) from None
    return PaymentResult(
        provider=provider,
        account=account.name,
        kind=Kind.TRANSFER,
        status=TRANSFER_STATES[state],
        provider_status=state,
        order_id=order_id,
        transaction_id=bill,
        amount=amount,
        paid_at=paid_at,
        payer_id=payer,
        app_id=account.settings.expected_app_id(),
        merchant_id=merchant,
        event_id=make_event_id(account.name, Kind.TRANSFER, bill or order_id, None, state),
        key_id=key_id,
        raw=_raw(envelope, resource),
    )


def _refused_event_id(account: Account3, resource: Resource) -> str | None:
    trade = resource.get("transfer_bill_no") or resource.get("out_bill_no")
    state = resource.get("state")
    if not (isinstance(trade, str) and trade and isinstance(state, str) and state):
        return None
    return make_event_id(account.name, Kind.TRANSFER, trade, None, state)
