"""`paynotify query` in a subprocess, against the WeChat Pay v3 and UnionPay emulators served by a real
uvicorn on a free port: the answer printed and delivered once, to the config's subscribers; an unknown
account, an unreachable provider and a refused answer each end with a message and its exit status,
never a traceback."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from paynotify_unionpay.testing import UnionPayEmulator
from paynotify_wechatpay.testing import WeChatPayV3Emulator

_SECRETS = ("apiv3_key", "merchant_private_key", "signing_pfx", "signing_pfx_password")

SINK = """
import json, pathlib

def record(result):
    with open(pathlib.Path(__file__).with_name("delivered.jsonl"), "a") as f:
        f.write(json.dumps({"event_id": result.event_id, "source": result.source.value}) + "\\n")
"""


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` served by uvicorn on a free port of 127.0.0.1, in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def write_config(tmp_path: Path, provider: str, settings: Mapping[str, Any], **options: Any) -> Path:
    """A paynotify.toml for account `shop`: every secret and PEM in a file of its own, as deployed."""
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    store = f"sqlite:///{tmp_path / 'events.db'}"
    (tmp_path / "events.db").touch()  # serve or init makes the store; query refuses one not there
    lines = [f"store = {json.dumps(store)}", 'subscribers = ["sink:record"]']
    lines += [f"{name} = {json.dumps(value)}" for name, value in options.items()]
    lines += ["", "[accounts.shop]", f"provider = {json.dumps(provider)}"]
    for name, value in settings.items():
        if isinstance(value, list):
            paths = []
            for i, item in enumerate(value):
                (keys / f"{name}-{i}").write_text(item)
                paths.append(str(keys / f"{name}-{i}"))
            lines.append(f"{name}_file = {json.dumps(paths)}")
        elif name in _SECRETS or "\n" in str(value):
            (keys / name).write_text(str(value))
            lines.append(f"{name}_file = {json.dumps(str(keys / name))}")
        else:
            lines.append(f"{name} = {json.dumps(value)}")
    (tmp_path / "sink.py").write_text(SINK)
    config = tmp_path / "paynotify.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def query(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paynotify", "query", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def delivered(tmp_path: Path) -> list[dict[str, str]]:
    sink = tmp_path / "delivered.jsonl"
    return [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []


@pytest.fixture(scope="module")
def wechat() -> Iterator[tuple[WeChatPayV3Emulator, str]]:
    emu = WeChatPayV3Emulator()
    with served(emu) as url:
        yield emu, url


def v3_config(tmp_path: Path, wechat: tuple[WeChatPayV3Emulator, str], **options: Any) -> Path:
    emu, url = wechat
    return write_config(tmp_path, "wechatpay-v3", {**emu.account_settings(), "base_url": url}, **options)


def test_a_query_prints_the_answer_and_delivers_it_once(
    tmp_path: Path, wechat: tuple[WeChatPayV3Emulator, str]
) -> None:
    emu, _ = wechat
    emu.pay("cli-order-1", total=8888)
    config = v3_config(tmp_path, wechat)
    first = query(config, "shop", "cli-order-1", "--json")
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout)
    assert (answer["found"], answer["outcome"]) == (True, "delivered")
    assert answer["result"]["order_id"] == "cli-order-1"
    assert answer["result"]["amount"] == "88.88"
    assert answer["result"]["source"] == "query"
    again = query(config, "shop", "cli-order-1")
    assert again.returncode == 0, again.stderr
    assert "payment succeeded (SUCCESS) 88.88 CNY" in again.stdout
    assert again.stdout.rstrip().endswith(": duplicate")
    assert delivered(tmp_path) == [{"event_id": answer["result"]["event_id"], "source": "query"}]


def test_a_refund_and_an_unknown_order(tmp_path: Path, wechat: tuple[WeChatPayV3Emulator, str]) -> None:
    emu, _ = wechat
    emu.pay("cli-order-2", total=10000)
    emu.refund("cli-refund-2", "cli-order-2", refund=2500)
    config = v3_config(tmp_path, wechat)
    refund = query(config, "shop", "cli-order-2", "--refund", "cli-refund-2", "--json")
    assert refund.returncode == 0, refund.stderr
    answer = json.loads(refund.stdout)
    assert (answer["outcome"], answer["result"]["kind"], answer["result"]["refund_amount"]) == (
        "delivered", "refund", "25.00",
    )  # fmt: skip
    missing = query(config, "shop", "cli-never-made")
    assert missing.returncode == 0, missing.stderr
    assert "knows no such order" in missing.stdout


def test_an_unknown_account_is_named_without_a_traceback(
    tmp_path: Path, wechat: tuple[WeChatPayV3Emulator, str]
) -> None:
    run = query(v3_config(tmp_path, wechat), "nope", "cli-order-1")
    assert run.returncode == 2
    assert "no account 'nope' (configured: shop)" in run.stderr
    assert "Traceback" not in run.stderr


def test_an_unreachable_provider_is_a_message_and_exit_3(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    emu = WeChatPayV3Emulator()
    settings = {**emu.account_settings(), "base_url": f"http://127.0.0.1:{port}"}
    config = write_config(tmp_path, "wechatpay-v3", settings, query_attempts=2, query_timeout=3)
    started = time.monotonic()
    run = query(config, "shop", "cli-order-1")
    assert run.returncode == 3, run.stderr
    assert "unreachable (ConnectError) after 2 attempt(s)" in run.stderr
    assert "Traceback" not in run.stderr
    assert time.monotonic() - started < 30


def test_a_refused_answer_is_a_message_and_exit_4(
    tmp_path: Path, wechat: tuple[WeChatPayV3Emulator, str]
) -> None:
    emu, _ = wechat
    emu.pay("cli-order-3")
    emu.unsigned = True
    try:
        run = query(v3_config(tmp_path, wechat), "shop", "cli-order-3")
    finally:
        emu.unsigned = False
    assert run.returncode == 4, run.stderr
    assert "refused" in run.stderr
    assert "nothing was delivered" in run.stderr
    assert "Traceback" not in run.stderr
    assert delivered(tmp_path) == []


def test_a_unionpay_query_takes_the_time_of_the_order(tmp_path: Path) -> None:
    emu = UnionPayEmulator()
    paid = emu.pay("cli20260101001", txn_amt="8888")
    beijing = emu.txn_time(paid).strftime("%Y-%m-%dT%H:%M:%S")  # no offset: Beijing time
    with served(emu) as url:
        config = write_config(tmp_path, "unionpay", {**emu.account_settings(), "base_url": url})
        run = query(config, "shop", "cli20260101001", "--at", beijing, "--json")
        no_time = query(config, "shop", "cli20260101001")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["outcome"] == "delivered"
    assert no_time.returncode == 3
    assert "needs the transaction's txnTime" in no_time.stderr
    bad = query(config, "shop", "cli20260101001", "--at", "yesterday")
    assert bad.returncode == 2
    assert "is not an ISO date and time" in bad.stderr
    assert len(delivered(tmp_path)) == 1
