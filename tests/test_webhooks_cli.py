"""`paynotify webhooks list|test|retry` against sinks of the test's own."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from _webhook_sink import Answer, sink
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.routing import Mount
from test_webhooks import SECRET, result

from paynotify import EventState, Notifier, open_store
from paynotify.cli._main import main
from paynotify.ops._console import console_app
from paynotify.publishers import PublishError, WebhookPublisher, decode_message, outbox_url


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


# -- the console's webhooks page ---------------------------------------------------------------

CONSOLE_TOKEN = "t0ken-for-tests-0123456789"


async def test_the_console_shows_endpoints_and_retries_one(tmp_path: Path) -> None:
    async with sink() as ok, sink(Answer(status=500, body=b"<script>x</script>")) as bad:
        notifier = Notifier("memory://")
        good = WebhookPublisher(
            ok.url + "?token=qs-secret-7f3a", name="good", secret=SECRET, delivery="inline"
        )
        broken = WebhookPublisher(
            bad.url, name="broken", secret=SECRET, outbox=f"sqlite:///{tmp_path / 'o.db'}", circuit_failures=1
        )
        notifier.subscribe(good)
        notifier.subscribe(broken)
        await good(result(1))
        with pytest.raises(PublishError):
            await broken._inline(result(2))  # one failed attempt opens its circuit
        assert broken.outbox is not None
        await broken.outbox.enqueue(result(2))
        [lease] = await broken.outbox.acquire(limit=1, lease_seconds=10)
        await broken.outbox.dead_letter(lease.event.event_id, lease.token, error="HTTP 500")

        try:
            await console_checks(notifier, broken)
        finally:
            await good.aclose()
            await broken.aclose()


async def console_checks(notifier: Notifier, broken: WebhookPublisher) -> None:
    app = Starlette(routes=[Mount("/console", app=console_app(notifier, auth=CONSOLE_TOKEN))])
    headers = {"authorization": f"Bearer {CONSOLE_TOKEN}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console.test", headers=headers
    ) as client:
        assert (
            await client.get("/console/webhooks", headers={"authorization": "Bearer no"})
        ).status_code == 401
        page = await client.get("/console/webhooks")
        assert page.status_code == 200
        text = page.text
        assert 'id="endpoint-good"' in text
        assert "s-healthy" in text
        assert "s-open" in text
        assert "qs-secret-7f3a" not in text  # the URL's query is never shown
        assert "&lt;script&gt;x&lt;/script&gt;" in text  # the endpoint's answer, escaped
        assert "<script>" not in text
        assert result(1).event_id in text
        confirm = await client.get("/console/webhooks/broken/retry")
        assert "1 dead-lettered events" in confirm.text
        forged = await client.post("/console/webhooks/broken/retry", data={"csrf": "0" * 64})
        assert forged.status_code == 403
        assert broken.state.value == "open"
        token = re.search(r'name="csrf" value="([0-9a-f.]+)"', confirm.text)
        assert token is not None
        done = await client.post("/console/webhooks/broken/retry", data={"csrf": token.group(1)})
        assert "1 dead-lettered events due now; endpoint re-enabled" in done.text
        assert broken.state.value == "healthy"
        assert broken.outbox is not None
        stored = await broken.outbox.get(result(2).event_id)
        assert stored is not None
        assert stored.state is EventState.PENDING
        assert (await client.get("/console/webhooks/nobody/retry")).status_code == 404
