"""`paynotify expectations list`, by subprocess, on the SQLite store a config names: an open
expectation, one settled by its (genuinely signed) notification, filters, JSON, and none."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
from paynotify_wechatpay.testing import WeChatPayV2Emulator

from paynotify import Notifier


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paynotify", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def write_config(directory: Path, emu: WeChatPayV2Emulator) -> Path:
    settings = emu.account_settings()
    (directory / "api_key").write_text(settings.pop("api_key"))
    lines = ['store = "sqlite:///events.db"', "", "[accounts.shop]", 'provider = "wechatpay-v2"',
             'api_key_file = "api_key"']  # fmt: skip
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    config = directory / "paynotify.toml"
    config.write_text("\n".join(lines) + "\n")
    (directory / "events.db").touch()  # serve or init makes the store; expect refuses one not there
    return config


def test_expectations_list_shows_open_and_settled_ones(tmp_path: Path) -> None:
    emu = WeChatPayV2Emulator()
    config = write_config(tmp_path, emu)

    async def record() -> None:
        notifier = Notifier.from_config(config)
        async with notifier:
            await notifier.expect("shop", "order-open", amount="1.00", until=timedelta(hours=2))
            await notifier.expect("shop", "order-paid", amount="88.88", until=timedelta(hours=2))
            emu.pay("order-paid", total_fee=8888)
            transport = httpx.ASGITransport(app=notifier.asgi())
            async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
                reply = await client.post("/shop/notify", content=emu.notification(order="order-paid"))
                assert b"SUCCESS" in reply.content

    asyncio.run(record())
    listed = cli("expectations", "list", "--config", str(config), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = sorted(listed.stdout.splitlines())
    assert len(rows) == 2
    assert rows[0].startswith("shop  order-open  -  1.00 CNY  open  asked 0")
    assert rows[1].startswith("shop  order-paid  -  88.88 CNY  settled (succeeded)")

    where = ("--config", str(config))
    settled = cli("expectations", "list", "--state", "settled", "--json", *where, cwd=tmp_path)
    assert settled.returncode == 0, settled.stderr
    [one] = [json.loads(line) for line in settled.stdout.splitlines()]
    assert (one["order_id"], one["state"], one["outcome"]) == ("order-paid", "settled", "succeeded")
    assert "lease_token" not in one

    none = cli("expectations", "list", "--account", "other", "--config", str(config), cwd=tmp_path)
    assert (none.returncode, none.stdout) == (0, "")
    assert "no expectations match" in none.stderr


def test_expect_records_an_expectation_that_list_shows(tmp_path: Path) -> None:
    emu = WeChatPayV2Emulator()
    config = write_config(tmp_path, emu)
    where = ("--config", str(config))
    made = cli("expect", "shop", "order-9", "--amount", "12.50", "--until", "2h", *where, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("shop  order-9  -  12.50 CNY  open  asked 0")
    [one] = [
        json.loads(x)
        for x in cli("expectations", "list", "--json", *where, cwd=tmp_path).stdout.split("\n")
        if x
    ]
    assert 7000 < one["until"] - one["created_at"] <= 7200
    bad = cli("expect", "shop", "order-9", "--amount", "-1", "--until", "2h", *where, cwd=tmp_path)
    assert bad.returncode == 2
    assert "must be positive" in bad.stderr
    unknown = cli("expect", "nobody", "order-9", "--amount", "1", "--until", "2h", *where, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "no account 'nobody'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
