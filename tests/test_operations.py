"""Operations: `paynotify events`, `paynotify worker`, and `paynotify serve` reloading on SIGHUP,
run as a user would (the CLI in-process, servers and workers as real processes)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import APP_ID, SECRET, example_notify
from test_notifier import request

from paynotify import EventState, Notifier, make_event_id
from paynotify.cli._main import main

TESTS = Path(__file__).parent

CONFIG = """
store = "sqlite:///events.db"
delivery = "{delivery}"
backoff_seconds = 0.05
subscribers = ["_ops_subscribers:ship", "_ops_subscribers:flaky"]

[accounts.shop]
provider = "examplepay"
app_id = "app-1"
secret_env = "PAYNOTIFY_TEST_SECRET"
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "PAYNOTIFY_TEST_SECRET": SECRET,
        "PAYNOTIFY_TEST_RECORD": str(tmp_path / "calls.log"),
        "PAYNOTIFY_TEST_FAIL": str(tmp_path / "fail"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(TESTS))
    return values


def config(tmp_path: Path, delivery: str = "inline") -> Path:
    path = tmp_path / "paynotify.toml"
    path.write_text(CONFIG.format(delivery=delivery))
    return path


def calls(env: dict[str, str]) -> list[tuple[str, str]]:
    path = Path(env["PAYNOTIFY_TEST_RECORD"])
    lines = path.read_text().splitlines() if path.exists() else []
    return [(line.split()[0], line.split()[1]) for line in lines]


EVENT = make_event_id("shop", "payment", "txn-order-1", None, "paid")


def test_events_list_show_retry_replay_purge(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path)
    Path(env["PAYNOTIFY_TEST_FAIL"]).touch()

    async def deliver_once() -> None:
        async with Notifier.from_config(cfg) as notifier:
            assert (await notifier.handle("shop", request(example_notify()))).body == b"RETRY"

    asyncio.run(deliver_once())
    assert calls(env) == [(EVENT, "ship")]

    def run(*args: str) -> tuple[int, str]:
        code = main(["events", "--config", str(cfg), *args])
        return code, capsys.readouterr().out

    code, out = run("list", "--state", "released")
    assert code == 0
    assert EVENT in out
    assert "flaky subscriber is failing" in out
    code, out = run("show", EVENT)
    assert '"done_subscribers": [\n    "_ops_subscribers.ship"\n  ]' in out
    assert '"order_id": "order-1"' in out

    assert (run("retry", EVENT))[0] == 1  # still failing: reported
    Path(env["PAYNOTIFY_TEST_FAIL"]).unlink()
    code, out = run("retry", "--released")
    assert (code, out) == (0, "1 delivered, 0 not (unknown, in flight, not eligible or failed again)\n")
    assert calls(env) == [(EVENT, "ship"), (EVENT, "flaky")]  # ship was not run again

    assert (run("replay", EVENT))[0] == 0
    assert calls(env)[2:] == [(EVENT, "ship"), (EVENT, "flaky")]
    code, out = run("list", "--json", "--state", "done")
    assert f'"event_id": "{EVENT}"' in out
    assert (run("purge"))[1] == "purged 0 events\n"  # within retention
    time.sleep(0.1)
    assert (run("purge", "--older-than", "0.000001"))[1] == "purged 1 events\n"  # 0.09 s
    code, out = run("list")
    assert out.splitlines()[0].startswith("EVENT_ID")  # the header row, and no event under it
    assert len(out.splitlines()) == 1


def test_events_with_only_a_store_url_requeues(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    async def prepare() -> None:
        n = Notifier(f"sqlite:///{tmp_path / 'events.db'}", delivery="queued", max_attempts=1)
        n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
        n.subscribe(lambda r: 1 / 0, name="broken")
        async with n:
            await n.handle("shop", request(example_notify()))
            deadline = time.monotonic() + 5
            while (e := await n.store.get(EVENT)) is None or e.state is not EventState.DEAD:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)

    asyncio.run(prepare())
    url = f"sqlite:///{tmp_path / 'events.db'}"
    assert main(["events", "--store", url, "list", "--dead"]) == 0
    assert EVENT in capsys.readouterr().out
    assert main(["events", "--store", url, "retry", "--dead"]) == 0
    assert "1 requeued for the dispatchers" in capsys.readouterr().out
    assert main(["events", "--store", url, "show", "nope"]) == 2
    assert "no event 'nope'" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def spawn(env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def start(procs: list[subprocess.Popen[bytes]], log: Path, *args: str) -> subprocess.Popen[bytes]:
    child_env = os.environ | {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "paynotify", *args],
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    procs.append(proc)
    return proc


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_serve_reloads_accounts_on_sighup_and_keeps_them_on_a_bad_file(
    tmp_path: Path, env: dict[str, str], spawn: list[subprocess.Popen[bytes]]
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    cfg = tmp_path / "paynotify.toml"
    good = CONFIG.format(delivery="inline").replace(
        'secret_env = "PAYNOTIFY_TEST_SECRET"', 'secret_file = "secret.txt"'
    )
    cfg.write_text(good)
    port, log = free_port(), tmp_path / "serve.log"
    proc = start(spawn, log, "serve", "--config", str(cfg), "--port", str(port))
    wait_for(lambda: "Uvicorn running" in log.read_text(), "the server to start")

    def post(order: str, secret: str) -> bytes:
        headers, body = example_notify(order, secret=secret)
        return httpx.post(f"http://127.0.0.1:{port}/shop/notify", content=body, headers=headers).content

    assert post("o-1", SECRET) == b"OK"
    secret.write_text("rotated-secret")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in log.read_text(), "the reload")
    assert post("o-2", SECRET) == b"RETRY"
    assert post("o-3", "rotated-secret") == b"OK"

    cfg.write_text(good.replace('app_id = "app-1"', "app_id = ["))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload of" in log.read_text(), "the refused reload")
    assert "still serving the previous accounts" in log.read_text()
    assert post("o-4", "rotated-secret") == b"OK"
    assert proc.poll() is None


def test_worker_delivers_what_a_web_process_queued(
    tmp_path: Path, env: dict[str, str], spawn: list[subprocess.Popen[bytes]]
) -> None:
    cfg = config(tmp_path, delivery="queued")

    async def enqueue() -> None:
        web = Notifier.from_config(cfg)
        await web.open(dispatcher=False)
        try:
            for i in range(5):
                assert (await web.handle("shop", request(example_notify(f"o-{i}")))).body == b"OK"
        finally:
            await web.aclose()

    asyncio.run(enqueue())
    assert calls(env) == []
    log = tmp_path / "worker.log"
    proc = start(spawn, log, "worker", "--config", str(cfg))
    wait_for(lambda: len(calls(env)) == 10, "the worker to deliver 5 events to 2 subscribers")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "worker stopped" in log.read_text()


def test_worker_refuses_inline_delivery(tmp_path: Path, env: dict[str, str]) -> None:
    assert main(["worker", "--config", str(config(tmp_path, delivery="inline"))]) == 2


def test_serve_with_an_ops_port_and_json_logs(
    tmp_path: Path, env: dict[str, str], spawn: list[subprocess.Popen[bytes]]
) -> None:
    cfg = config(tmp_path)
    port, ops_port, log = free_port(), free_port(), tmp_path / "serve.log"
    start(spawn, log, "serve", "--config", str(cfg), "--port", str(port), "--ops-port", str(ops_port),
          "--log-format", "json")  # fmt: skip
    wait_for(lambda: log.read_text().count("Uvicorn running") == 2, "both servers to start")
    headers, body = example_notify("o-ops")
    assert httpx.post(f"http://127.0.0.1:{port}/shop/notify", content=body, headers=headers).content == b"OK"
    ops = f"http://127.0.0.1:{ops_port}"
    assert httpx.get(f"{ops}/healthz").text == "ok\n"
    assert httpx.get(f"{ops}/readyz").text == "ready\n"
    metrics = httpx.get(f"{ops}/metrics").text
    assert (
        'paynotify_notifications_total{account="shop",channel="notify",outcome="delivered",'
        'provider="examplepay"} 1.0' in metrics
    )
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404  # not on the public port
    assert httpx.get(f"{ops}/console/").status_code == 404  # no console without credentials
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("outcome") == "delivered" and line.get("account") == "shop" for line in lines)
    assert SECRET not in log.read_text()


def test_serve_mounts_the_console_on_the_ops_port_when_given_credentials(
    tmp_path: Path, env: dict[str, str], spawn: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYNOTIFY_CONSOLE_TOKEN", "a-long-random-console-token")
    cfg = config(tmp_path)
    port, ops_port, log = free_port(), free_port(), tmp_path / "serve.log"
    start(spawn, log, "serve", "--config", str(cfg), "--port", str(port), "--ops-port", str(ops_port))
    wait_for(lambda: log.read_text().count("Uvicorn running") == 2, "both servers to start")
    console = f"http://127.0.0.1:{ops_port}/console/"
    assert httpx.get(console).status_code == 401
    signed_in = httpx.get(console, headers={"authorization": "Bearer a-long-random-console-token"})
    assert signed_in.status_code == 200
    assert "a-long-random-console-token" not in signed_in.text
