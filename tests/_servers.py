"""Real servers on 127.0.0.1 for the framework tests: one in a subprocess (its port read from its
log, so no port is guessed), or waitress in a thread of the test process."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import waitress.server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

TESTS = Path(__file__).parent
_LISTENING = re.compile(rb"(?:running on|Serving on|Listening at:) http://127\.0\.0\.1:(\d+)")


@dataclass
class Served:
    base_url: str
    process: subprocess.Popen[bytes] | None = None
    log: bytearray = field(default_factory=bytearray)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> str:
        """Stop the subprocess with `sig` and return everything it logged."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout)
        return self.log.decode(errors="replace")


@contextlib.contextmanager
def subprocess_server(
    *command: str, cwd: Path = TESTS, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> Iterator[Served]:
    """Run `python -m <command>` in `cwd`, importable from there; yield once it listens, stop it after."""
    path = os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")])
    # Not inherited: tests/test_django.py sets it for this process, and each project names its own.
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=cwd,
        env={**inherited, "PYTHONPATH": path, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    served = Served("", process)
    reader = threading.Thread(target=_drain, args=(process, served.log), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while not (match := _LISTENING.search(served.log)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {served.log.decode(errors='replace')}")
            time.sleep(0.05)
        served.base_url = f"http://127.0.0.1:{int(match.group(1))}"
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(5)
        if process.stdout is not None:
            process.stdout.close()


def _drain(process: subprocess.Popen[bytes], log: bytearray) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        log.extend(line)


@contextlib.contextmanager
def waitress_thread(app: WSGIApplication, threads: int = 8) -> Iterator[str]:
    """Serve a WSGI app with waitress in a thread of this process; yield its base URL."""
    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=threads)
    assert isinstance(server, waitress.server.BaseWSGIServer)
    assert server.socket is not None
    port: int = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # Closed on the server's own thread (its trigger runs the thunk there): a close from this
        # thread races the loop's select() over the sockets it closes (EBADF kills the loop, and
        # the connections it held leak into the next test as ResourceWarnings).
        loop: Any = server  # waitress's stubs know neither its trigger nor its map
        loop.trigger.pull_trigger(lambda: _close_all(loop))
        thread.join(10)
        server.task_dispatcher.shutdown()


def _close_all(server: Any) -> None:
    """The listening socket, the trigger and every connection: the loop ends with its map empty."""
    for dispatcher in list(server._map.values()):
        dispatcher.close()


def raw_post(base_url: str, target: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
    """A POST whose request target goes on the wire as written (an HTTP client would normalize it)."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", target, body=body, headers=dict(headers))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
