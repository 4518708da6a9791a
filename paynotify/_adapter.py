"""What every framework adapter other than the bare ASGI route shares: the one event loop the
Notifier lives on (`NotifierLoop`), and the ASGI route answering through that loop
(`notification_asgi`). An adapter above the core reaches them, with the route's rules, through
`paynotify.adapters`.

Django under WSGI runs each async view in an event loop of its own, and neither Django nor WSGI has
a lifespan; a store (an SQLite writer, an asyncpg pool) opened on one loop cannot serve another,
nor be closed once the server's loop is gone. So paynotify keeps its own loop, in a daemon thread,
one per Notifier and process: opened on the first request, closed when the process exits (or by
`close()`), whatever the framework does with its loops.

"When the process exits" is threading's shutdown, not `atexit`: atexit runs after the interpreter
has stopped every `ThreadPoolExecutor`'s workers (concurrent.futures registers that with
threading), so a store that closes through an executor (SQLite's writer thread, `to_thread`) failed
there with "cannot schedule new futures after shutdown" (issue 23).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import concurrent.futures.thread  # registers its shutdown first, so the close below runs before it
import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from paynotify._asgi import NotificationApp
from paynotify._errors import UnknownAccount
from paynotify._http import InboundRequest, Reply
from paynotify._options import Options
from paynotify._provider import Account
from paynotify._refusals import RecentRefusals
from paynotify._route import door_reason, unknown_reply

__all__ = ["Notifier", "NotifierLoop", "keep_door_refusal", "notification_asgi", "notifier_loop"]


class Notifier(Protocol):
    """What the adapters need of a `paynotify.Notifier` (named here, so imports point down)."""

    @property
    def body_limit(self) -> int: ...
    @property
    def options(self) -> Options: ...
    async def open(self) -> None: ...
    async def aclose(self) -> None: ...
    async def handle(self, account_name: str, request: InboundRequest) -> Reply: ...
    @property
    def accounts(self) -> Mapping[str, Account[Any]]: ...
    @property
    def refused_requests(self) -> RecentRefusals: ...


def keep_door_refusal(notifier: Notifier, account: str, channel: str, reply: Reply, client: object) -> None:
    """Keep a refusal the WSGI or Django door made before the pipeline, for the Refused page: from
    the door's own thread (a deque's append is atomic; the observer stays the loop's alone)."""
    found = notifier.accounts.get(account)
    notifier.refused_requests.at_door(found, account, channel, door_reason(reply), reply.status, client)


log = logging.getLogger("paynotify")

# Any non-success reply makes every provider retry, so a store that cannot open costs one retry.
UNAVAILABLE = Reply.text("notifications unavailable, retry later", 503)


class NotifierLoop:
    """A Notifier served from paynotify's own event loop thread (see the module docstring)."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._exit_hook_pid = 0

    def submit(self, account: str, request: InboundRequest) -> concurrent.futures.Future[Reply]:
        """Run one delivery on the Notifier's loop; the future's result is the reply to send."""
        return asyncio.run_coroutine_threadsafe(self._handle(account, request), self._running_loop())

    def close(self, timeout: float = 30.0) -> None:
        """Close the Notifier (its store, its background tasks) and stop the loop.

        Idempotent; run at the process's exit once the loop has started. A request after it opens
        again.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            if loop is None or thread is None or self._pid != os.getpid():
                return
        try:
            if self._opened:
                asyncio.run_coroutine_threadsafe(self._aclose(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # After a fork only the forking thread survives: the child needs a loop of its own.
            if self._loop is None or self._pid != os.getpid():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._loop, self._pid = loop, os.getpid()
        self._thread = threading.Thread(target=loop.run_forever, name="paynotify-loop", daemon=True)
        self._thread.start()
        if self._exit_hook_pid != self._pid:  # once per process: a hook cannot be unregistered
            self._exit_hook_pid = self._pid
            at_thread_shutdown(self._close_at_exit)

    def _close_at_exit(self) -> None:
        # An exception here would stop threading's shutdown half-way: log it instead.
        try:
            self.close()
        except Exception:
            log.exception("paynotify: the notifier did not close cleanly at exit")

    async def _handle(self, account: str, request: InboundRequest) -> Reply:
        if not self._opened:
            assert self._open_lock is not None
            async with self._open_lock:
                if not self._opened:
                    try:
                        await self.notifier.open()
                    except Exception:
                        log.exception("could not open the notifier; answering 503 so the provider retries")
                        return UNAVAILABLE
                    self._opened = True
        try:
            return await self.notifier.handle(account, request)
        except UnknownAccount as exc:
            return unknown_reply(exc)

    async def _aclose(self) -> None:
        self._opened = False
        await self.notifier.aclose()
        log.info("paynotify: notifier closed")


def at_thread_shutdown(callback: Callable[[], None]) -> None:
    """Run `callback` as the interpreter shuts down, while executors' worker threads still run.

    `threading._register_atexit` is how concurrent.futures itself stops its workers at that point
    (callbacks run last-registered first, so this one runs before theirs); where it is missing,
    plain `atexit`, which is too late for executors but still closes what needs no thread.
    """
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(callback)
            return
    except RuntimeError:  # the shutdown has begun: nothing will call it now
        return
    atexit.register(callback)


def notification_asgi(notifier: Notifier) -> NotificationApp:
    """The ASGI route of `notifier` (its body limit, its body deadline, its early 413) answering
    through the Notifier's own loop, as the Django view and the WSGI app do: a process that serves
    some requests through this and some through a view opens one store, on one loop."""
    loop = notifier_loop(notifier)

    def handle(account: str, request: InboundRequest) -> asyncio.Future[Reply]:
        return asyncio.wrap_future(loop.submit(account, request))

    options = notifier.options
    kept = functools.partial(keep_door_refusal, notifier)  # its refusals, off the Notifier's loop
    return NotificationApp(
        handle, body_limit=options.body_limit, body_timeout=options.body_timeout, refused=kept
    )


_loops: dict[Notifier, NotifierLoop] = {}
_loops_lock = threading.Lock()


def notifier_loop(notifier: Notifier) -> NotifierLoop:
    """The one NotifierLoop of `notifier`, shared by its WSGI app and Django views."""
    with _loops_lock:
        found = _loops.get(notifier)
        if found is None:
            found = _loops[notifier] = NotifierLoop(notifier)
        return found
