"""The body deadline of the WSGI doors (the WSGI app, the Django view under WSGI).

A WSGI app reads its body through a blocking file, and a read that waits on a client who trickles
or stalls returns only when the client sends or leaves: a per-read timeout would not bound a body
sent a byte at a time. Where the server hands the app its socket (gunicorn's `gunicorn.socket`,
werkzeug's `werkzeug.socket`), one watchdog thread per process shuts the socket's read side when
a body overruns its deadline: the blocked read returns at once, short, and the door answers 408
(the write side still works). Other servers give no socket; waitress needs none, since it has read
the whole body before the app runs (docs/flask.md shows its own limits).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BodyRead", "body_deadline", "server_socket"]

_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")


def server_socket(environ: Mapping[str, Any]) -> socket.socket | None:
    """The client's socket, when the WSGI server puts it in the environ."""
    for key in _SOCKET_KEYS:
        found = environ.get(key)
        if isinstance(found, socket.socket):
            return found
    return None


@dataclass(order=True)
class BodyRead:
    """One body being read; `expired` once its deadline has passed (whether or not the watchdog
    could cut the read short)."""

    deadline: float
    order: int
    sock: socket.socket | None = field(compare=False, default=None)
    done: bool = field(compare=False, default=False)
    cut: bool = field(compare=False, default=False)

    @property
    def expired(self) -> bool:
        return self.cut or time.monotonic() >= self.deadline


class _Watchdog:
    def __init__(self) -> None:
        self._order = itertools.count()
        self._reset()

    def _reset(self) -> None:
        # Also in a forked child: the parent's thread is not there, and its lock may have been held.
        self._wake = threading.Condition()
        self._heap: list[BodyRead] = []
        self._pid = 0

    @contextlib.contextmanager
    def reading(self, sock: socket.socket | None, seconds: float) -> Iterator[BodyRead]:
        read = BodyRead(time.monotonic() + seconds, next(self._order), sock)
        if sock is None:
            yield read
            return
        with self._wake:
            if self._pid != os.getpid():  # first use in this process
                self._pid = os.getpid()
                threading.Thread(target=self._watch, name="paynotify-body-deadline", daemon=True).start()
            heapq.heappush(self._heap, read)
            self._wake.notify()
        try:
            yield read
        finally:
            # Under the lock: once done, the watchdog never touches the socket (a kept-alive
            # connection's next request reads from it).
            with self._wake:
                read.done = True

    def _watch(self) -> None:
        with self._wake:
            while True:
                while self._heap and self._heap[0].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                delay = self._heap[0].deadline - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                read = heapq.heappop(self._heap)
                read.cut = True
                assert read.sock is not None
                with contextlib.suppress(OSError):  # the client has gone already
                    read.sock.shutdown(socket.SHUT_RD)


_watchdog = _Watchdog()
os.register_at_fork(after_in_child=_watchdog._reset)


def body_deadline(environ: Mapping[str, Any], seconds: float) -> contextlib.AbstractContextManager[BodyRead]:
    """Around a body's reads: cut them short after `seconds` where the server gives the socket."""
    return _watchdog.reading(server_socket(environ), seconds)
