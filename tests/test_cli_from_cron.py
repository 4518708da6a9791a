"""The CLI as cron runs it (issue 23): the `paynotify` script by its full path, a bare environment
(cron's PATH, HOME and LOGNAME, nothing else), no terminal, the working directory elsewhere and the
global options after the action, against the project `paynotify init` writes. A quiet night is exit 0
with a message; `--since 1h` counts back from now; a prefix names an event; a retried dead event is
delivered through the config's own subscribers and audited as `cli:<LOGNAME>`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from paynotify import InboundRequest, Kind, Notifier, SampleNotification

SCRIPT = Path(sys.executable).parent / "paynotify"  # what `pip install paynotify` puts on the path
OLD = 978307200.0  # 2001-01-01T00:00:00Z: an event recorded long before any `--since 1h`


@pytest.fixture
def project(tmp_path: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "paynotify", "init", "svc"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (tmp_path / "home").mkdir()
    return tmp_path / "svc" / "paynotify.toml"


def cron(config: Path, *args: str, code: int = 0) -> tuple[str, str]:
    """`paynotify ARGS --config CONFIG` as a crontab line runs it."""
    home = config.parent.parent / "home"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LOGNAME": "cron-user", "SHELL": "/bin/sh"}
    done = subprocess.run(
        [str(SCRIPT), *args, "--config", str(config)], cwd=home, env=env, capture_output=True, text=True,
        timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done.stdout, done.stderr


def record(config: Path, *orders: str) -> list[str]:
    """One Alipay payment per order, signed with init's test keys, through the config's notifier;
    a second subscriber fails, so each is left for a retry. Their event ids, in order."""

    def ledger(result: object) -> None:
        raise RuntimeError("ledger down")

    async def run() -> list[str]:
        notifier = Notifier.from_config(config)
        notifier.subscribe(ledger, name="ledger")
        account = notifier.accounts["shop-alipay"]
        ids = []
        async with notifier:
            for order in orders:
                sample = SampleNotification(Kind.PAYMENT, order, Decimal("9.90"))
                made = account.provider.sample_notification(account, config.parent, sample)
                assert made is not None
                headers = {name.lower(): value for name, value in made.headers.items()}
                await notifier.handle("shop-alipay", InboundRequest(made.method, made.channel, headers,
                                                                    made.query, made.body))  # fmt: skip
            ids = [e.event_id for e in await notifier.store.find(limit=10)]
        return ids

    return asyncio.run(run())


def _sql(config: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(config.parent / "paynotify-events.db") as db:
        db.execute(statement, params)
    db.close()


def test_the_script_is_installed_next_to_this_python() -> None:
    assert SCRIPT.exists(), f"no {SCRIPT}: pip install -e . in this venv"


@pytest.mark.parametrize("action", ["retry", "replay"])
def test_a_quiet_night_is_exit_0_with_a_message(project: Path, action: str) -> None:
    out, err = cron(project, "events", action, "--dead")
    assert (out, err) == (f"nothing to {action}\n", "")
    out, err = cron(project, "events", action, "--dead", "--since", "1h")
    assert (out, err) == (f"nothing to {action}\n", "")
    out, _ = cron(project, "events", "audit")
    assert out == "no operator actions recorded\n"


def test_since_1h_counts_back_from_now(project: Path) -> None:
    old, new = record(project, "cron-old", "cron-new")[::-1]  # find: newest first
    _sql(project, "UPDATE paynotify_events SET created_at = ? WHERE event_id = ?", OLD, old)
    for since, wanted in [("1h", {new}), ("2d", {new}), ("2000-12-31", {old, new}), ("2999-01-01", set())]:
        out, _ = cron(project, "events", "list", "--json", "--since", since)
        assert {json.loads(line)["event_id"] for line in out.splitlines()} == wanted, since


def test_a_prefix_names_the_event_and_a_dead_one_retried_from_cron_is_delivered_and_audited(
    project: Path,
) -> None:
    (event_id,) = record(project, "cron-dead")
    # Its retries spent: dead, with no subscriber done yet.
    _sql(project, "UPDATE paynotify_events SET state = 'dead', done_subscribers = '[]', due_at = NULL,"
         " next_attempt_at = NULL WHERE event_id = ?", event_id)  # fmt: skip
    shown, _ = cron(project, "events", "show", event_id[:7])
    assert json.loads(shown)["event_id"] == event_id
    assert json.loads(shown)["state"] == "dead"

    out, err = cron(project, "events", "retry", "--dead", "--since", "1h")
    assert (out, err) == ("1 delivered, 0 not (unknown, in flight, not eligible or failed again)\n", "")
    shown, _ = cron(project, "events", "show", event_id[:7])
    after = json.loads(shown)
    # Delivered in the cron job's own process, to the subscribers the config names (subs.py, next
    # to the config: the working directory is elsewhere).
    assert (after["state"], after["done_subscribers"]) == ("done", ["subs.on_event"])
    assert after["attempts"][0]["operator"] == "cli:cron-user"
    out, _ = cron(project, "events", "audit", "--json")
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert (entry["operator"], entry["action"]) == ("cli:cron-user", "bulk-retry")
    assert entry["event_ids"] == [event_id]
    # The selection as it ran: `1h` resolved to the time it meant, so the entry still says it later.
    since = entry["selection"].removeprefix("--dead --since ")
    assert datetime.fromisoformat(since) < datetime.fromisoformat(entry["at"])
