"""A WeChat Pay v3 merchant transfer (商家转账) result, MCHTRANSFER.BILL.FINISHED, as a `transfer`.

Resource: out_bill_no, transfer_bill_no, state, transfer_amount (fen), openid, fail_reason, mch_id,
create_time, update_time.

| state     | status    |
|-----------|-----------|
| SUCCESS   | succeeded |
| FAIL      | failed    |
| CANCELLED | closed    |
| other     | pending   |

order_id = out_bill_no, transaction_id = transfer_bill_no, amount = transfer_amount / 100, payer_id =
openid (the user who received it), merchant_id = mch_id, paid_at = update_time when SUCCESS. A
transfer resource carries no appid: app_id is the account's own, so the merchant check decides (as
for refunds). event_id = account + transfer + transfer_bill_no (or out_bill_no) + state.
"""

from __future__ import annotations

from paynotify import Kind, PaymentResult, Status, make_event_id
from paynotify_wechatpay._v3_envelope import Envelope
from paynotify_wechatpay._v3_mapping import Account3, Resource, _optional, _raw, _required, _time, _yuan

__all__ = ["TRANSFER_STATES", "is_transfer", "transfer_result"]

TRANSFER_STATES = {"SUCCESS": Status.SUCCEEDED, "FAIL": Status.FAILED, "CANCELLED": Status.CLOSED}


def is_transfer(event_type: str) -> bool:
    return event_type.startswith("MCHTRANSFER.")


def transfer_result(
    account: Account3, envelope: Envelope, resource: Resource, *, provider: str, key_id: str
) -> PaymentResult:
    state = _required(resource, "state")
    order_id = _required(resource, "out_bill_no")
    bill = _optional(resource, "transfer_bill_no")
    succeeded = state == "SUCCESS"
    return PaymentResult(
        provider=provider,
        account=account.name,
        kind=Kind.TRANSFER,
        status=TRANSFER_STATES.get(state, Status.PENDING),
        provider_status=state,
        order_id=order_id,
        transaction_id=bill,
        amount=_yuan(resource, "transfer_amount", required=True),
        paid_at=_time(resource, "update_time", required=True) if succeeded else None,
        payer_id=_optional(resource, "openid"),
        app_id=account.settings.expected_app_id(),
        merchant_id=_required(resource, "mch_id"),
        event_id=make_event_id(account.name, Kind.TRANSFER, bill or order_id, None, state),
        key_id=key_id,
        raw=_raw(envelope, resource),
    )
