"""Confirming a notified result by asking the provider, for notifications that do not
authenticate themselves (WeChat Pay v2 refunds: AES-ECB without a MAC, so blocks of two genuine
refunds can be spliced into a third that decrypts and parses).

The provider's client decides which results need it (`ProviderApi.needs_confirmation`) and what
its verified answer must agree with (`ProviderApi.confirm`). Here: a contradiction is a refusal,
recorded `rejected` with the reason and never delivered, under an id of its own (the digest of
what it claimed), never the event id it names: a splice carries a genuine refund's ids, and a
record under that id would make the genuine notification, when it comes, look recorded. No
verified answer at all (provider down, slow, an error, an answer that does not verify) is a
failure the provider's own resend retries, so a genuine refund is delivered once it can be asked.
An event already done is not asked about again (a resend, or a replayed copy).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from paynotify._api import ProviderApi, Send
from paynotify._errors import DeliveryFailed
from paynotify._observe import Outcome
from paynotify._pipeline_log import entry_fields
from paynotify._provider import Account
from paynotify._result import PaymentResult, UnhandledEvent, make_event_id
from paynotify._stores.base import EventState, Store

__all__ = ["confirmation"]

log = logging.getLogger("paynotify")


async def confirmation(
    api: ProviderApi[Any], send: Send | None, store: Store, account: Account[Any], result: PaymentResult
) -> tuple[UnhandledEvent, str] | DeliveryFailed | None:
    """None when the provider confirms `result` (or it is done already); (the entry to record
    `rejected`, why) when it contradicts it; a `DeliveryFailed` (ask the provider to resend) when
    it could not be asked."""
    try:
        stored = await store.get(result.event_id)
        if stored is not None and stored.state is EventState.DONE:
            return None  # delivered before: the claim answers it as a duplicate
        if send is None:
            raise RuntimeError("this pipeline has no transport to the providers' APIs")
        reason = await api.confirm(send, account, result)
    except Exception as exc:  # the answer's secrets never reach exc: clients name fields, not keys
        log.warning(
            "could not confirm %s event %s with the provider; asking it to resend: %s",
            result.provider,
            result.event_id,
            exc,
            extra=entry_fields(result, Outcome.DELIVERY_FAILED, "unconfirmed"),
        )
        return DeliveryFailed("not confirmed by the provider yet", account=account.name)
    if reason is None:
        return None
    return unconfirmed_entry(result), f"account {account.name!r}: {reason}"


def unconfirmed_entry(result: PaymentResult) -> UnhandledEvent:
    """What a contradicted result is kept as: the content it claimed, under the digest of what it
    claims (not of `raw`, which holds fields anyone may vary, a v2 refund's unsigned nonce_str)."""
    claimed = result.model_dump_json(exclude={"raw"}).encode()
    event_id = make_event_id(result.account, "unconfirmed", hashlib.sha256(claimed).hexdigest())
    raw = {**result.model_dump(mode="json"), "paynotify_event_id": result.event_id}
    return UnhandledEvent(
        provider=result.provider, account=result.account, event_type="UNCONFIRMED", event_id=event_id, raw=raw
    )
