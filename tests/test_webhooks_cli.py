"""`paynotify webhooks list|test|retry` against sinks of the test's own."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from _webhook_sink import Answer, sink
from standardwebhooks.webhooks import Webhook
from test_webhooks import SECRET, result

from paynotify import EventState, open_store
from paynotify._cli import main
from paynotify.publishers import decode_message, outbox_url


def write_config(tmp_path: Path, ok_url: str, bad_url: str) -> Path:
    config = tmp_path / "paynotify.toml"
    config.write_text(
        'store = "sqlite:///events.db"\n'
        '[accounts.shop]\nprovider = "examplepay"\napp_id = "app-1"\nsecret_env = "HOOK_SECRET"\n'
        f'[[webhooks]]\nname = "ok"\nurl = "{ok_url}?token=hidden"\nsecret_env = "HOOK_SECRET"\n'
        f'[[webhooks]]\nname = "bad"\nurl = "{bad_url}"\nsecret_env = "HOOK_SECRET"\n'
    )
    return config


async def cli(*args: str) -> int:
    return await asyncio.to_thread(main, ["webhooks", *args])


async def test_list_test_and_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    async with sink() as ok, sink(Answer(status=500, body=b"no")) as bad:
        config = str(write_config(tmp_path, ok.url, bad.url))
        outbox = open_store(outbox_url(f"sqlite:///{tmp_path / 'events.db'}", "bad"))
        try:
            await outbox.enqueue(result(1))
            [lease] = await outbox.acquire(limit=1, lease_seconds=10)
            await outbox.dead_letter(lease.event.event_id, lease.token, error="HTTP 500")
        finally:
            await outbox.close()

        assert await cli("--config", config, "list", "--json") == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(r["name"], r["dead"], r["pending"]) for r in rows] == [("ok", 0, 0), ("bad", 1, 0)]
        assert rows[0]["url"] == ok.url  # the query (a token) is not shown
        assert await cli("--config", config, "list") == 0
        assert capsys.readouterr().out.splitlines()[0].startswith("NAME\tDELIVERY")

        assert await cli("--config", config, "test", "ok") == 0
        assert capsys.readouterr().out.startswith("ok\t204\t")
        [received] = ok.received
        Webhook(SECRET).verify(received.body, received.headers, json_parse=False)
        assert decode_message(received.body).account == "paynotify-test"
        assert await cli("--config", config, "test", "bad") == 1
        assert "HTTP 500: no" in capsys.readouterr().out

        assert await cli("--config", config, "retry", "bad") == 0
        assert "1 dead-lettered events due now" in capsys.readouterr().out
        outbox = open_store(outbox_url(f"sqlite:///{tmp_path / 'events.db'}", "bad"))
        try:
            stored = await outbox.get(result(1).event_id)
            assert stored is not None
            assert stored.state is EventState.PENDING
        finally:
            await outbox.close()
        assert await cli("--config", config, "retry", "nobody") == 2
        assert "no webhook named 'nobody'; configured: ok, bad" in capsys.readouterr().err
