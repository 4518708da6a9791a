"""The one shared handler: verify, normalize, check, record, dispatch, reply.

It knows no provider's format: providers turn bytes into a `PaymentResult` (or an `UnhandledEvent`)
and supply their reply bytes; this module decides which reply a delivery gets (DESIGN.md, "Reply
semantics"). Every verified notification is recorded before it is acknowledged: delivered, queued,
`rejected` by a check, or `unhandled`. `settle` is the one step that runs the subscribers and
settles the event, for inline delivery, dispatchers' leases and redelivery alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from paynotify._accounts import Accounts
from paynotify._api import Send
from paynotify._confirmation import confirmation
from paynotify._errors import (
    CheckFailed,
    DeliveryFailed,
    InFlight,
    InvalidContent,
    MalformedNotification,
    StoreError,
    UnknownAccount,
    UnknownChannel,
    UnstorableContent,
    VerificationError,
)
from paynotify._http import InboundRequest, Reply
from paynotify._observe import Observer, Outcome
from paynotify._options import Options
from paynotify._pipeline_log import describe as _describe
from paynotify._pipeline_log import entry_fields as _entry_fields
from paynotify._pipeline_log import log_delivered as _log_delivered
from paynotify._provider import Account, Provider
from paynotify._refusals import RefusalLog, refused_outcome, rejected_id
from paynotify._result import PaymentResult, Source, UnhandledEvent
from paynotify._return_path import answer_return
from paynotify._route import TOO_LARGE, door_reason
from paynotify._stores.base import ClaimState, EventState, Lease, Store
from paynotify._stores.history import Attempt, AttemptOutcome
from paynotify._subscribers import Subscribers

__all__ = ["Pipeline", "Unrecorded", "check_ids"]

log = logging.getLogger("paynotify")
T = TypeVar("T")


def check_ids(result: PaymentResult, account: Account[Any]) -> CheckFailed | None:
    """A refusal when the result names another app or merchant than the account is configured with."""
    for name, expected in account.expected_ids:
        got = getattr(result, name)
        if got != expected:
            return CheckFailed(f"{name} is {got!r}, this account expects {expected!r}", account=account.name)
    return None


def _nothing() -> None:
    pass


class Unrecorded(StoreError):
    """The subscribers ran, but the store could not record the event done (it was handed back)."""


_SETTLED = frozenset({Outcome.DELIVERED, Outcome.QUEUED, Outcome.DUPLICATE, Outcome.REJECTED_CHECK})
"""Outcomes after which the provider is acknowledged (each of a combined notification's results)."""


class Pipeline:
    def __init__(self, accounts: Accounts, subscribers: Subscribers, store: Store, options: Options) -> None:
        self.accounts = accounts
        self.subscribers = subscribers
        self.store = store
        self.options = options
        self.wake: Callable[[], None] = _nothing
        """Called when an event becomes due in this process (the local dispatcher's wake-up)."""
        self.delivered: Callable[[PaymentResult], Awaitable[None]] | None = None  # closes expectations
        self.inflight: dict[str, str] = {}
        """event_id -> lease token of the inline deliveries in progress, handed back on close."""
        self.observer: Observer | None = None
        self.send: Send | None = None  # the providers' APIs, to confirm what is not authenticated
        self.refusals = RefusalLog()

    def _staged(self, name: str, step: Awaitable[T]) -> Awaitable[T]:
        """`step` inside the stage `name` while the observer traces; else `step` itself (no
        context manager entered: this runs on every notification)."""
        observer = self.observer
        if observer is None or not observer.tracing:
            return step
        return _in_stage(observer, name, step)

    # -- a request -----------------------------------------------------------------------------

    async def handle(self, account_name: str, request: InboundRequest) -> Reply:
        """Run one delivery through the pipeline and return the reply to send.

        Raises `UnknownAccount` when no account (or channel) answers; everything else becomes a reply.
        """
        account = self.accounts.get(account_name)
        if account is None or request.channel not in account.provider.channels:
            if self.observer is not None:
                self.observer.answered("-", "-", "-", Outcome.UNKNOWN_ACCOUNT, 0.0)
            if account is None:
                self.refusals.recent.unknown(account_name, request)
                raise UnknownAccount(f"no account {account_name!r}")
            self.refusals.recent.refused(account, request, "unknown_channel", "UnknownChannel")
            channels = frozenset(account.provider.channels)
            served = ", ".join(sorted(channels))
            raise UnknownChannel(
                f"account {account_name!r} has no {request.channel!r} channel; it has {served}",
                account=account_name,
                channels=channels,
            )
        path = self._return if request.channel == Source.RETURN else self._handle
        observer = self.observer
        if observer is None:
            return account.provider.reply_for(request, (await path(account, request))[0])
        started = time.perf_counter()
        if not observer.tracing:
            reply, outcome = await path(account, request)
        else:
            attributes = {"paynotify.provider": account.provider.name, "paynotify.account": account.name}
            with observer.stage("paynotify.notification", attributes):
                reply, outcome = await path(account, request)
                observer.annotate({"paynotify.outcome": outcome.value})
        seconds = time.perf_counter() - started
        observer.answered(account.provider.name, account.name, request.channel, outcome, seconds)
        return account.provider.reply_for(request, reply)

    def refused_at_door(self, account_name: str, channel: str, reply: Reply, client: object) -> None:
        """A request the ASGI door refused before the pipeline (a body too large, too slow, of a bad
        length, cut short), on the loop: counted (`too_large`) and kept for the Refused page."""
        if reply is TOO_LARGE and self.observer is not None:
            self.observer.answered("-", "-", "-", Outcome.TOO_LARGE, 0.0)
        account = self.accounts.get(account_name)
        self.refusals.recent.at_door(account, account_name, channel, door_reason(reply), reply.status, client)

    async def admit(self, result: PaymentResult, account: Account[Any]) -> Outcome:
        """A verified result that came by another way than a notification (a query's answer):
        checked, recorded and delivered as a notification of it is, on its event id, so whichever
        comes first is delivered and the other is a duplicate. Returns how it ended."""
        return (await self._one(result, account))[1]

    def _return(self, account: Account[Any], request: InboundRequest) -> Awaitable[tuple[Reply, Outcome]]:
        return answer_return(account, request, parse=self._parse, refusal=self.refusal,
                             refusals=self.refusals, handler=self.subscribers.return_handler)  # fmt: skip

    async def _handle(self, account: Account[Any], request: InboundRequest) -> tuple[Reply, Outcome]:
        provider = account.provider
        try:
            parsed = self._parse(account, request)
        except (MalformedNotification, VerificationError) as exc:
            exc.account = exc.account or account.name
            outcome = refused_outcome(exc)
            self.refusals.refused(account, outcome, exc, request)
            if isinstance(exc, InvalidContent) and outcome is Outcome.REJECTED_CONTENT:
                return await self._record_invalid(exc, account, request)
            return provider.nack(exc), outcome
        except Exception:
            log.exception("account %r: provider %s failed on a notification", account.name, provider.name)
            error = DeliveryFailed("internal error while parsing", account=account.name)
            return provider.nack(error), Outcome.DELIVERY_FAILED
        if isinstance(parsed, UnhandledEvent):
            return await self._unhandled(parsed, provider)
        if isinstance(parsed, PaymentResult):
            return await self._one(parsed, account)
        return await self._several(parsed, account)

    async def _several(
        self, results: Sequence[PaymentResult], account: Account[Any]
    ) -> tuple[Reply, Outcome]:
        """One notification carrying several results (a combined order): each is checked, recorded
        and delivered on its own event id, in order; the provider is acknowledged only when every
        one was. A resend delivers the ones not done yet (the rest are duplicates)."""
        if not results:
            missing = MalformedNotification("no result in the notification", account=account.name)
            return account.provider.nack(missing), Outcome.MALFORMED
        outcomes = []
        for result in results:
            reply, outcome = await self._one(result, account)
            if outcome not in _SETTLED:
                return reply, outcome  # the provider resends; what was done stays done
            outcomes.append(outcome)
        best = Outcome.DELIVERED if Outcome.DELIVERED in outcomes else outcomes[0]
        return account.provider.ack(), best

    async def _one(self, parsed: PaymentResult, account: Account[Any]) -> tuple[Reply, Outcome]:
        provider = account.provider
        if self.observer is not None and self.observer.tracing:
            self.observer.annotate({"paynotify.event_id": parsed.event_id})
        try:
            # As refusal(), without a coroutine of its own on the common path (no check hooks).
            refusal = check_ids(parsed, account)
            if refusal is None and self.subscribers.checks:
                refusal = await self._hook_refusal(parsed, account)
        except Exception:
            log.exception("account %r: a check hook failed on %s", account.name, parsed.event_id)
            crashed = DeliveryFailed("check hook failed", account=account.name)
            return provider.nack(crashed), Outcome.DELIVERY_FAILED
        api = provider.api() if refusal is None and parsed.source is Source.NOTIFY else None
        if api is not None and api.needs_confirmation(account, parsed):
            confirmed = await confirmation(api, self.send, self.store, account, parsed)
            if isinstance(confirmed, DeliveryFailed):
                return provider.nack(confirmed), Outcome.DELIVERY_FAILED
            if confirmed is not None:
                return await self._keep_refused(*confirmed, provider, Outcome.REJECTED_CHECK)
        if refusal is not None:
            return await self._rejected(parsed, refusal, provider)
        if self.options.delivery == "queued":
            return await self._enqueue(parsed, provider)
        return await self._deliver(parsed, provider)

    def _parse(
        self, account: Account[Any], request: InboundRequest
    ) -> PaymentResult | Sequence[PaymentResult] | UnhandledEvent:
        observer = self.observer
        if observer is None:
            return account.provider.parse(request, account)
        started = time.perf_counter()
        try:
            if not observer.tracing:
                return account.provider.parse(request, account)
            with observer.stage("paynotify.verify"):
                return account.provider.parse(request, account)
        finally:
            observer.verification(account.provider.name, time.perf_counter() - started)

    async def refusal(self, result: PaymentResult, account: Account[Any]) -> CheckFailed | None:
        """Why the account's checks refuse `result` (its ids, then the check hooks), or None."""
        refusal = check_ids(result, account)
        if refusal is None and self.subscribers.checks:
            refusal = await self._hook_refusal(result, account)
        return refusal

    async def _hook_refusal(self, result: PaymentResult, account: Account[Any]) -> CheckFailed | None:
        refusal = await self.subscribers.refusal(result)
        if refusal is not None:
            refusal.account = refusal.account or account.name
        return refusal

    async def _record_invalid(
        self, exc: InvalidContent, account: Account[Any], request: InboundRequest
    ) -> tuple[Reply, Outcome]:
        """Keep what was verified, though it is refused: an operator sees it with the reason, and
        the provider is acknowledged (its resend would be refused the same way) once it is on
        record; if the store cannot take it, the provider is asked to resend.

        Under an id of its own (the body's digest), never the event id it would have had: content
        out of shape can be cut from genuine signed bytes (a re-partitioned Alipay form), and a
        record under the genuine event's id would make the genuine notification look recorded.
        The id is the decoded content's (`rejected_id`): a re-encoded copy is the same record.
        """
        event_id = rejected_id(account.name, exc, request.body)
        raw = dict(exc.raw)
        if exc.event_id is not None:
            raw["paynotify_event_id"] = exc.event_id  # what a well-formed copy would be, to find it
        entry = UnhandledEvent(provider=account.provider.name, account=account.name,
                               event_type="INVALID", event_id=event_id, raw=raw)  # fmt: skip
        return await self._keep_refused(entry, str(exc), account.provider, Outcome.REJECTED_CONTENT)

    async def _keep_refused(
        self, entry: UnhandledEvent, reason: str, provider: Provider[Any], outcome: Outcome
    ) -> tuple[Reply, Outcome]:
        try:
            await self.store.record(entry, EventState.REJECTED, reason=reason)
        except Exception as stored:
            return self._store_down(provider, entry, stored)
        return provider.ack(), outcome

    def _store_down(
        self, provider: Provider[Any], entry: PaymentResult | UnhandledEvent, exc: Exception
    ) -> tuple[Reply, Outcome]:
        if isinstance(exc, UnstorableContent):
            log.error("refused %s notification %s: %s", provider.name, entry.event_id, exc)
            error = MalformedNotification("content cannot be stored", account=entry.account)
            return provider.nack(error), Outcome.MALFORMED
        if isinstance(exc, StoreError):
            log.error("store unavailable, asking %s to retry %s: %s", provider.name, entry.event_id, exc,
                      extra=_entry_fields(entry, Outcome.STORE_UNAVAILABLE, str(exc)))  # fmt: skip
        else:
            log.exception("store failed on %s; asking %s to retry", entry.event_id, provider.name)
        return provider.nack(
            DeliveryFailed("store unavailable", account=entry.account)
        ), Outcome.STORE_UNAVAILABLE

    async def _rejected(
        self, result: PaymentResult, refusal: CheckFailed, provider: Provider[Any]
    ) -> tuple[Reply, Outcome]:
        # Recorded, so that after the account is fixed a replay delivers it; acknowledged, because
        # the provider's resend would be refused the same way.
        try:
            await self.store.record(result, EventState.REJECTED, reason=str(refusal))
        except Exception as exc:
            return self._store_down(provider, result, exc)
        await self._history_note(
            result.event_id, Attempt.of(time.time(), AttemptOutcome.REJECTED, str(refusal))
        )
        log.warning("verified notification refused by a check (%s), recorded as rejected: %s",
                    result.event_id, refusal,
                    extra=_entry_fields(result, Outcome.REJECTED_CHECK, refusal.message))  # fmt: skip
        await self.subscribers.tell_rejected(result, refusal)
        return provider.ack(), Outcome.REJECTED_CHECK

    async def _history_note(self, event_id: str, attempt: Attempt) -> None:
        """An attempt that ends in no lease write (a rejection): its own write, never a failure."""
        try:
            await self.store.history.add_attempt(event_id, attempt)
        except (StoreError, NotImplementedError) as exc:
            log.error("could not add to the history of event %s: %s", event_id, exc)

    async def _unhandled(self, event: UnhandledEvent, provider: Provider[Any]) -> tuple[Reply, Outcome]:
        try:
            await self.store.record(event, EventState.UNHANDLED, reason=None)
        except Exception as exc:
            return self._store_down(provider, event, exc)
        log.info("verified %s event %s (%s) on account %r is not a payment or refund; recorded as unhandled",
                 event.provider, event.event_type, event.event_id, event.account)  # fmt: skip
        if not await self.subscribers.tell_unhandled(event):
            error = DeliveryFailed("unhandled-event hook failed", account=event.account)
            return provider.nack(error), Outcome.DELIVERY_FAILED
        return provider.ack(), Outcome.UNHANDLED

    async def _enqueue(self, result: PaymentResult, provider: Provider[Any]) -> tuple[Reply, Outcome]:
        try:
            new = await self._staged("paynotify.store.enqueue", self.store.enqueue(result))
        except Exception as exc:
            return self._store_down(provider, result, exc)
        if not new:
            log.info("duplicate of recorded event %s (%s)", result.event_id, result.order_id,
                     extra=_entry_fields(result, Outcome.DUPLICATE))  # fmt: skip
            return provider.ack(), Outcome.DUPLICATE
        log.info("queued %s %s/%s order %s (%s)", result.provider, *_describe(result),
                 extra=_entry_fields(result, Outcome.QUEUED))  # fmt: skip
        self.wake()
        return provider.ack(), Outcome.QUEUED

    async def _deliver(self, result: PaymentResult, provider: Provider[Any]) -> tuple[Reply, Outcome]:
        event_id = result.event_id
        try:
            claim = await self._staged(
                "paynotify.store.claim", self.store.claim(result, lease_seconds=self.options.lease_seconds)
            )
        except Exception as exc:
            return self._store_down(provider, result, exc)
        if claim.state is ClaimState.DONE:
            log.info("duplicate of completed event %s (%s)", event_id, result.order_id,
                     extra=_entry_fields(result, Outcome.DUPLICATE))  # fmt: skip
            return provider.ack(), Outcome.DUPLICATE
        if claim.state is ClaimState.IN_FLIGHT or claim.token is None:
            log.info("event %s is being handled by another delivery", event_id,
                     extra=_entry_fields(result, Outcome.IN_FLIGHT))  # fmt: skip
            return provider.nack(
                InFlight("event in flight, retry later", account=result.account)
            ), Outcome.IN_FLIGHT
        self.inflight[event_id] = claim.token
        started = time.time()
        try:
            error = await self.settle(result, claim.token, claim.done_subscribers, attempts=claim.attempts)
        except Exception as exc:
            if not isinstance(exc, Unrecorded):  # not the completion (settle logged and handed that back)
                log.exception("could not settle event %s; handing it back", event_id)
                interrupted = Attempt.of(started, AttemptOutcome.INTERRUPTED, "store unavailable")
                await self.hand_back(event_id, claim.token, "store unavailable", interrupted)
            down = DeliveryFailed("store unavailable", account=result.account)
            return provider.nack(down), Outcome.STORE_UNAVAILABLE
        finally:
            self.inflight.pop(event_id, None)
        if error is not None:
            # The provider sees only that delivery failed; the cause is in the log, not in its reply.
            failed = DeliveryFailed("delivery failed, retry later", account=result.account)
            return provider.nack(failed), Outcome.DELIVERY_FAILED
        return provider.ack(), Outcome.DELIVERED

    # -- settling an event ---------------------------------------------------------------------

    async def settle(
        self, result: PaymentResult, token: str, done: frozenset[str], *, attempts: int
    ) -> str | None:
        """Run the subscribers not yet done on the event under `token`, then settle it: DONE when
        all succeeded (None); otherwise (what failed) where the next attempt will find it: RELEASED
        for the provider's resend (inline), or PENDING after the backoff or DEAD (queued).

        Raises `Unrecorded` (a `StoreError`) when the subscribers ran but the store could not
        record it done: the one policy of every path (docs/architecture.md, "A store failure
        after delivery"), logged here at ERROR and the event handed back (`hand_back`).
        """
        started = time.time()
        error, unrecorded = await self.subscribers.run(result, token, done, self.store, self.observer)
        if error is None:
            # The attempt goes into the history in the same write as the completion.
            delivered = Attempt.of(started, AttemptOutcome.DELIVERED)
            try:
                await self._staged(
                    "paynotify.store.complete",
                    self.store.complete(result.event_id, token, done=unrecorded, attempt=delivered),
                )
            except Exception as exc:
                raise await self._unrecorded(result, token, exc, started) from exc
            _log_delivered(result)
            if self.delivered is not None:
                await self.delivered(result)
            return None
        await self._failed(result.event_id, token, error, attempts, started)
        return error

    async def _failed(self, event_id: str, token: str, error: str, attempts: int, started: float) -> None:
        if self.options.delivery == "inline":
            await self.hand_back(event_id, token, error, Attempt.of(started, AttemptOutcome.FAILED, error))
            return
        delay = self.options.retry_delay(attempts)
        try:
            if delay is None:
                log.error("event %s failed %d times; dead-lettered: %s", event_id, attempts, error)
                dead = Attempt.of(started, AttemptOutcome.DEAD, error)
                await self.store.dead_letter(event_id, token, error=error, attempt=dead)
                return
            log.warning("event %s attempt %d failed, next in %.3g s: %s", event_id, attempts, delay, error)
            failed = Attempt.of(started, AttemptOutcome.FAILED, error)
            await self.store.reschedule(event_id, token, at=time.time() + delay, error=error, attempt=failed)
        except StoreError as exc:
            log.error("could not settle event %s (its lease will expire): %s", event_id, exc)
            return
        # Wake this process's dispatcher when the retry is due rather than at its next poll.
        asyncio.get_running_loop().call_later(delay, self.wake)

    async def _unrecorded(
        self, result: PaymentResult, token: str, exc: Exception, started: float
    ) -> Unrecorded:
        # Subscribers ran but the record did not stick: asking for a retry risks a repeat,
        # acknowledging risks nothing being recorded. At-least-once wins: hand it back, say so.
        event_id, error = result.event_id, "delivered, but the store could not record it"
        log.error("event %s: the subscribers ran, but the store could not record it done; handing it "
                  "back: %s", event_id, exc,
                  extra=_entry_fields(result, Outcome.STORE_UNAVAILABLE, str(exc)))  # fmt: skip
        await self.hand_back(event_id, token, error, Attempt.of(started, AttemptOutcome.INTERRUPTED, error))
        return Unrecorded(f"event {event_id}: {error}: {exc}")

    async def hand_back(self, event_id: str, token: str, error: str, attempt: Attempt | None = None) -> bool:
        """Give the lease back so the next attempt need not wait for it to expire: released
        (inline: the provider's resend or a retry takes it) or pending and due now (queued: the
        next dispatcher takes it), with `attempt` closed in the same write. False when the store
        refuses that too (logged; the lease expires after `lease_seconds`, and the event is taken
        over then)."""
        try:
            if self.options.delivery == "inline":
                await self.store.release(event_id, token, error=error, attempt=attempt)
            else:
                await self.store.reschedule(event_id, token, at=time.time(), error=error, attempt=attempt)
        except Exception as exc:
            log.error("could not hand back event %s (its lease will expire): %s", event_id, exc)
            return False
        return True

    async def hand_back_at_shutdown(self, cut_short: Mapping[str, Lease]) -> None:
        """Hand back each event still being delivered at shutdown, inline (`inflight`) or by a
        dispatcher (`cut_short`, its leases; their attempts closed as interrupted), so another
        process takes it at once."""
        reason = "interrupted by shutdown"
        leases: dict[str, tuple[str, float | None]] = {k: (token, None) for k, token in self.inflight.items()}
        leases.update({k: (lease.token, lease.event.updated_at) for k, lease in cut_short.items()})
        for event_id, (token, started) in leases.items():
            # A dispatcher's lease was last updated when it was acquired: the attempt's start.
            attempt = None if started is None else Attempt.of(started, AttemptOutcome.INTERRUPTED, reason)
            if await self.hand_back(event_id, token, reason, attempt):
                log.warning("event %s was still being delivered at shutdown; handed back", event_id)

    async def deliver_lease(self, lease: Lease) -> None:
        """Deliver one event a dispatcher acquired: complete it, or retry later, or dead-letter it."""
        event = lease.event
        try:
            result = event.result()
        except StoreError as exc:
            log.error("%s; dead-lettering it", exc)
            dead = Attempt.of(time.time(), AttemptOutcome.DEAD, str(exc))
            await self.store.dead_letter(event.event_id, lease.token, error=str(exc)[:500], attempt=dead)
            return
        with contextlib.suppress(Unrecorded):  # logged and handed back by settle
            await self.settle(result, lease.token, event.done_subscribers, attempts=event.attempts)


async def _in_stage(observer: Observer, name: str, step: Awaitable[T]) -> T:
    with observer.stage(name):
        return await step
