"""Through a real uvicorn server on loopback, with the SQLite store: what a provider would see."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from conftest import APP_ID, SECRET, example_notify

from paynotify import Notifier, PaymentResult
from paynotify.cli._serve import background_server


def make_notifier(db: Path) -> Notifier:
    n = Notifier(f"sqlite:///{db}")
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    return n


async def post_until_acked(client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes) -> int:
    """Play the provider: resend (quickly) until acknowledged. Returns the number of attempts."""
    for attempt in range(1, 200):
        if (await client.post(url, content=body, headers=headers)).content == b"OK":
            return attempt
        await asyncio.sleep(0.02)
    raise AssertionError("never acknowledged")


async def test_concurrent_identical_deliveries_dispatch_once_and_restart_repeats_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    notifier = make_notifier(db)
    calls: list[str] = []
    lock = threading.Lock()

    @notifier.subscribe
    def slow_subscriber(result: PaymentResult) -> None:
        time.sleep(0.05)  # long enough that copies arrive while the first is in flight
        with lock:
            calls.append(result.order_id)

    notifications = [example_notify(f"order-{i}") for i in range(5)]
    with background_server(notifier.asgi()) as port:
        url = f"http://127.0.0.1:{port}/shop/notify"
        async with httpx.AsyncClient(timeout=10) as client:
            # 8 copies of each of 5 notifications, all at once, each copy retried until acknowledged
            attempts = await asyncio.gather(
                *(post_until_acked(client, url, h, b) for h, b in notifications for _ in range(8))
            )
    assert sorted(calls) == sorted(f"order-{i}" for i in range(5))  # exactly once each
    assert max(attempts) > 1  # some copies really did arrive while the first was in flight

    # A restart on the same SQLite file: every copy is acknowledged, nothing is dispatched again.
    restarted = make_notifier(db)
    again: list[PaymentResult] = []
    restarted.subscribe(again.append)
    with background_server(restarted.asgi()) as port:
        async with httpx.AsyncClient(timeout=10) as client:
            for headers, body in notifications:
                reply = await client.post(
                    f"http://127.0.0.1:{port}/shop/notify", content=body, headers=headers
                )
                assert reply.content == b"OK"
    assert again == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_paynotify_serve_runs_a_config(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET)
    config = tmp_path / "paynotify.toml"
    config.write_text(
        f'store = "sqlite:///events.db"\n[accounts.shop]\nprovider = "examplepay"\napp_id = "{APP_ID}"\n'
        'secret_file = "secret"\n'
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "paynotify", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        headers, body = example_notify()
        deadline = time.monotonic() + 20
        while True:
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/shop/notify", content=body, headers=headers)
                break
            except httpx.ConnectError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert reply.content == b"OK"
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode()
    assert "delivered examplepay payment/succeeded order order-1" in output


def test_serve_with_a_bad_config_exits_with_a_message(tmp_path: Path) -> None:
    config = tmp_path / "paynotify.toml"
    config.write_text('[accounts.shop]\nprovider = "examplepay"\napp_id = "x"\n')
    done = subprocess.run(
        [sys.executable, "-m", "paynotify", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "account 'shop' (examplepay): secret: Field required" in done.stderr
