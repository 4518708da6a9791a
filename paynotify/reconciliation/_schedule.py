"""The daily reconciliation `paynotify serve` and `paynotify worker` run (option `reconcile`): once
the providers have published yesterday's bills (option `reconcile_after`, Beijing time, default
10:30), yesterday (Beijing) of every account whose provider can fetch bills is reconciled, once.

    daily = DailyReconciliation(notifier, heal=True, after=time(10, 30))
    await daily.run_once()       # what is due now: the accounts whose yesterday has no report
    await daily.run()            # rounds every `poll_seconds` until stop()

"Once" is the store's: an account's day with a stored report is done, whichever instance ran it and
whether this process restarted since. Two instances never run one day at once (the (account, day)
lease `reconcile` takes). Each run is bounded by `timeout` seconds; a day that failed (no bill yet,
the provider unreachable, a bill refused) is tried again `retry_seconds` later, by this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING

from paynotify import BEIJING, PaynotifyError
from paynotify.reconciliation._report import ReconciliationReport
from paynotify.reconciliation._run import ReconciliationInProgress, reconcile, reports_of

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = ["DEFAULT_AFTER", "DailyReconciliation", "notifier_daily", "parse_after"]

log = logging.getLogger("paynotify")

DEFAULT_AFTER = clock_time(10, 30)
"""Beijing time after which yesterday's bills are asked for: WeChat Pay publishes its trade bills
from 10:00 the next day (its documentation), Alipay from 09:00; half an hour more is margin."""


def parse_after(text: str) -> clock_time:
    """ "HH:MM" (Beijing) as a time (the option is checked when made)."""
    hours, _, minutes = text.partition(":")
    return clock_time(int(hours), int(minutes))


def notifier_daily(notifier: Notifier) -> DailyReconciliation:
    """The daily reconciliation `Notifier.open` runs, from its options."""
    options = notifier.options
    after = parse_after(options.reconcile_after)
    return DailyReconciliation(notifier, heal=options.reconcile_heal, after=after,
                               timeout=options.reconcile_timeout)  # fmt: skip


class DailyReconciliation:
    """Reconciles yesterday for every account with bills, once each, after `after` (Beijing)."""

    def __init__(
        self,
        notifier: Notifier,
        *,
        heal: bool = True,
        after: clock_time = DEFAULT_AFTER,
        timeout: float = 600.0,
        poll_seconds: float = 300.0,
        retry_seconds: float = 1800.0,
        start_delay: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.notifier = notifier
        self.heal = heal
        self.after = after
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.start_delay = start_delay
        """Seconds from `run` to its first round: a server starting up (or a test) is not yet asking."""
        self.clock = clock
        self.failed: dict[tuple[str, str], float] = {}
        """(account, day) -> when this process may try it again."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def due_day(self, now: float) -> date | None:
        """Yesterday in Beijing, once today's publication time has passed; else None."""
        moment = datetime.fromtimestamp(now, BEIJING)
        return moment.date() - timedelta(days=1) if moment.time() >= self.after else None

    def accounts(self) -> list[str]:
        """The accounts whose provider can fetch bills (each provider says, per account)."""
        names = []
        for name, account in self.notifier.accounts.items():
            api = account.provider.api()
            with contextlib.suppress(Exception):
                if api is not None and api.can_fetch_bills(account):
                    names.append(name)
        return sorted(names)

    async def run_once(self) -> list[ReconciliationReport]:
        """Reconcile what is due now; the reports made (a day done, running elsewhere or failed is
        not among them)."""
        now = self.clock()
        day = self.due_day(now)
        store = reports_of(self.notifier)
        if day is None or store is None:
            return []
        made = []
        self.failed = {key: at for key, at in self.failed.items() if key[1] == day.isoformat()}
        for name in self.accounts():
            key = (name, day.isoformat())
            if self.failed.get(key, 0.0) > now:
                continue
            try:
                if await store.report(name, day) is not None:
                    continue  # done, by this instance or another, before or after a restart
                async with asyncio.timeout(self.timeout):
                    report = await reconcile(self.notifier, name, day, heal=self.heal,
                                             lease_seconds=self.timeout + 60)  # fmt: skip
            except ReconciliationInProgress:
                continue  # another instance is on it; its report ends it
            except TimeoutError:
                log.warning("reconciliation of %r, %s: not done within %g s; trying again later",
                            name, day, self.timeout)  # fmt: skip
            except PaynotifyError as exc:
                log.warning("reconciliation of %r, %s failed, trying again later: %s", name, day, exc)
            except Exception:
                log.exception("reconciliation of %r, %s failed; trying again later", name, day)
            else:
                self.failed.pop(key, None)
                made.append(report)
                open_counts = {k: n for k, n in report.open_counts().items() if n}
                log.info("reconciled %r, %s: %d lines, %d matched, %d healed, open: %s", name, day,
                         report.lines, report.matched, report.healed, open_counts or "none")  # fmt: skip
                continue
            self.failed[key] = now + self.retry_seconds
        return made

    async def run(self) -> None:
        """Rounds every `poll_seconds`, the first `start_delay` seconds in, until `stop`."""
        self._stop.clear()
        wait = self.start_delay
        while not await self._stopped_within(wait):
            await self.run_once()
            wait = self.poll_seconds

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def start(self) -> DailyReconciliation:
        """Run `run` in a task of the running loop (until `aclose`); returns self."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="paynotify-reconciliation")
        return self

    async def aclose(self) -> None:
        """Stop; a reconciliation in progress is cut short (its lease released, its day still due)."""
        self.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
