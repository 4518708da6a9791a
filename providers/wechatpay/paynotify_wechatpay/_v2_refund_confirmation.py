"""Is a WeChat Pay v2 refund notification what WeChat Pay says? Its refundquery answer decides.

A v2 refund notification is not authenticated (`_v2_refund_crypto`: AES-ECB without a MAC, so
blocks of genuine refunds can be spliced into a third that decrypts). The signed answer of
`/pay/refundquery` for its out_refund_no is. The notification is confirmed when the answer
describes the same refund in the same state: the same account, order, refund and state (so the
same event_id) and the same amounts, ids and time. Anything else contradicts it, with a reason
naming what differs; the caller records the notification `rejected` with that reason (issue 25)
and may deliver the answer's own state instead, which is verified.

Pure: no I/O. The query itself is `WeChatPayV2Api.query_refund`.
"""

from __future__ import annotations

from dataclasses import dataclass

from paynotify import Kind, PaymentResult, QueryAnswer

__all__ = ["RefundConfirmation", "confirm_v2_refund"]

# What a splice can change and the answer states: every field of a refund result but its source,
# raw and key_id (how the news came, not what it says).
_COMPARED = (
    "account",
    "order_id",
    "transaction_id",
    "refund_id",
    "provider_refund_id",
    "amount",
    "refund_amount",
    "currency",
    "refunded_at",
    "app_id",
    "merchant_id",
)
_SHOWN = 64


@dataclass(frozen=True, slots=True)
class RefundConfirmation:
    """`confirmed`, or not, and why (never a secret: ids, states, amounts and times only)."""

    confirmed: bool
    reason: str


def _shown(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def confirm_v2_refund(notified: PaymentResult, answer: QueryAnswer) -> RefundConfirmation:
    """Confirmed when `answer` (refundquery for `notified.refund_id`) states the same refund, in the
    same state, as the verified-as-far-as-it-goes refund notification `notified`."""
    if notified.kind is not Kind.REFUND or notified.refund_id is None:
        raise ValueError("confirm_v2_refund takes a refund notification's result")
    refund = _shown(notified.refund_id)
    queried = answer.result
    if queried is None:
        return RefundConfirmation(False, f"WeChat Pay's refundquery knows no refund {refund}")
    if queried.kind is not Kind.REFUND:
        return RefundConfirmation(False, f"WeChat Pay's answer for refund {refund} is not a refund")
    if queried.provider_status != notified.provider_status:
        return RefundConfirmation(
            False,
            f"refund {refund}: the notification says {notified.provider_status}, WeChat Pay's "
            f"refundquery says {queried.provider_status}",
        )
    differences = [
        f"{name} {_shown(getattr(notified, name))} (WeChat Pay: {_shown(getattr(queried, name))})"
        for name in _COMPARED
        if getattr(notified, name) != getattr(queried, name)
    ]
    if differences:
        listed = "; ".join(differences)
        return RefundConfirmation(
            False, f"refund {refund}: the notification differs from WeChat Pay's refundquery: {listed}"
        )
    return RefundConfirmation(
        True, f"refund {refund} {notified.provider_status} confirmed by WeChat Pay's refundquery"
    )
