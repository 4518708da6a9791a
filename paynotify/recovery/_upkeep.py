"""The accounts' upkeep while a Notifier is open: what `ProviderApi.upkeep` starts (WeChat Pay v3:
platform certificates downloaded at start, and again when a notification names an unknown serial),
followed through `add_account`, `update_account` and `replace_accounts`, stopped at `aclose`.

A provider that cannot be reached never stops the Notifier from opening or serving: each upkeep is
bounded by the Send's deadline, and an account whose upkeep fails is logged and served as it is
(its notifications verify with what it has).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from paynotify import Account, Send, Upkeep

__all__ = ["Upkeeps"]

log = logging.getLogger("paynotify")


class Upkeeps:
    """Every account's `Upkeep`, kept in step with the Notifier's accounts."""

    def __init__(self, accounts: Callable[[], Mapping[str, Account[Any]]], send: Send) -> None:
        self._accounts = accounts
        self._send = send
        self._running: dict[str, tuple[object, Upkeep]] = {}  # account -> (its settings, its upkeep)
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._open = False

    async def start(self) -> None:
        """Start every account's upkeep (concurrently; each bounded by the Send's deadline)."""
        self._open = True
        await asyncio.gather(*(self._start(name) for name in self._accounts()))

    def _current(self, name: str) -> Callable[[], Account[Any]]:
        return lambda: self._accounts()[name]

    async def _start(self, name: str) -> None:
        account = self._accounts().get(name)
        api = account.provider.api() if account is not None else None
        if account is None or api is None:
            return
        try:
            upkeep = await api.upkeep(self._send, self._current(name))
        except Exception:
            log.exception("account %r: upkeep did not start; serving with what it has", name)
            return
        if upkeep is not None:
            self._running[name] = (account.settings, upkeep)

    def changed(self) -> None:
        """The accounts changed: start what new accounts need, have the others follow their new
        settings, stop the removed ones' (call on the Notifier's loop; a no-op before `start`)."""
        if not self._open:
            return
        accounts = self._accounts()
        for name in list(self._running):
            settings, upkeep = self._running[name]
            account = accounts.get(name)
            if account is None or account.provider.api() is None:
                del self._running[name]
                self._later(name, upkeep.aclose())
            elif account.settings is not settings:
                self._running[name] = (account.settings, upkeep)
                try:
                    upkeep.watch()
                except Exception:
                    log.exception("account %r: upkeep could not follow the new settings", name)
        for name in accounts:
            if name not in self._running and name not in self._starting:
                self._later(name, self._start(name))

    def _later(self, name: str, step: Any) -> None:
        task = asyncio.get_running_loop().create_task(step, name=f"paynotify-upkeep-{name}")
        self._starting[name] = task
        task.add_done_callback(lambda _: self._starting.pop(name, None))

    async def aclose(self) -> None:
        self._open = False
        starting = list(self._starting.values())
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        running, self._running = list(self._running.values()), {}
        for _, upkeep in running:
            try:
                await upkeep.aclose()
            except Exception:
                log.exception("an account's upkeep did not close cleanly")
