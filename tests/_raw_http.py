"""Raw-socket clients for the body-bound tests: what an HTTP client library would not send (a body
that never ends, a Content-Length it never meets, bytes trickled or stalled), with every wait bounded."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


def connect(base_url: str, timeout: float = 30.0) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def head(target: str, *headers: str) -> bytes:
    lines = [f"POST {target} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def read_status(sock: socket.socket, timeout: float) -> int | None:
    """The status of the reply, or None when the connection ended without one; at most `timeout` s."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while b"\r\n" not in received and time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return None
        except OSError:  # reset after the reply, or before it
            break
        if not chunk:
            break
        received += chunk
    if not received.startswith(b"HTTP/1."):
        return None
    return int(received.split(b" ", 2)[1])


@dataclass
class Flood:
    """A chunked body sent in a thread until `total` bytes are sent or the server stops taking them."""

    sent: int = 0
    error: str = ""


@contextlib.contextmanager
def chunked_flood(sock: socket.socket, total: int, chunk: int = 64 * 1024) -> Iterator[Flood]:
    flood = Flood()
    piece = f"{chunk:x}\r\n".encode() + b"x" * chunk + b"\r\n"

    def send() -> None:
        try:
            while flood.sent < total:
                sock.sendall(piece)
                flood.sent += chunk
            sock.sendall(b"0\r\n\r\n")
        except OSError as exc:  # the server closed the connection: what it read is bounded
            flood.error = type(exc).__name__

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield flood
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        sender.join(10)
