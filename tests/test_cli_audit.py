"""`paynotify events show` lists the event's attempts; `paynotify events audit` the operators'
actions; the CLI's own retries and replays are audited as `cli:<user>`."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_events import config, events, fill

__all__ = ["config"]  # the fixture, shared with tests/test_cli_events.py


def _ids(config: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    _, listed = events(config, "list", "--json", capsys=capsys)
    return [json.loads(line)["event_id"] for line in listed.splitlines()]


def test_a_retry_is_audited_as_the_cli_user_and_show_lists_the_attempts(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "night-owl")
    fill(config, {"o-1": "shop"}, failing=True)
    (event_id,) = _ids(config, capsys)
    code, _ = events(config, "retry", event_id[:8], capsys=capsys)
    assert code == 0
    _, shown = events(config, "show", event_id[:8], capsys=capsys)
    attempts = json.loads(shown)["attempts"]
    assert [(a["outcome"], a["operator"]) for a in attempts] == [
        ("retry", "cli:night-owl"),
        ("delivered", None),
        ("failed", None),
    ]
    assert attempts[2]["error"] == "sub: RuntimeError: down"
    assert attempts[1]["duration_ms"] >= 0
    assert attempts[1]["instance"]
    _, audited = events(config, "audit", "--json", capsys=capsys)
    (entry,) = [json.loads(line) for line in audited.splitlines()]
    assert (entry["operator"], entry["action"], entry["count"], entry["outcome"]) == (
        "cli:night-owl", "retry", 1, "ok",
    )  # fmt: skip
    assert entry["event_ids"] == [event_id]


def test_a_selection_is_one_bulk_entry_with_the_options_given(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(config, {"o-1": "shop", "o-2": "shop", "o-3": "other"}, failing=True)
    assert events(config, "retry", "--released", "--account", "shop", capsys=capsys)[0] == 0
    _, audited = events(config, "audit", "--json", capsys=capsys)
    (entry,) = [json.loads(line) for line in audited.splitlines()]
    assert (entry["action"], entry["count"], entry["selection"]) == (
        "bulk-retry",
        3,
        "--released --account shop",
    )
    assert entry["operator"] == f"cli:{getpass.getuser()}"


def test_audit_says_when_there_is_nothing_and_filters_by_time(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(config, {"o-1": "shop"})
    code, text = events(config, "audit", capsys=capsys)
    assert (code, text) == (0, "no operator actions recorded\n")
    (event_id,) = _ids(config, capsys)
    events(config, "replay", event_id, capsys=capsys)
    _, text = events(config, "audit", capsys=capsys)
    header, row = text.splitlines()
    assert header.split()[:4] == ["AT", "OPERATOR", "ACTION", "COUNT"]
    assert "replay" in row
    assert event_id in row
    _, later = events(config, "audit", "--since", "2999-01-01", capsys=capsys)
    assert later == "no operator actions recorded since then\n"


def test_audit_from_a_subprocess_exits_0_with_json_lines(config: Path) -> None:
    fill(config, {"o-1": "shop"})
    env = {**os.environ, "USER": "cron", "LOGNAME": "cron"}
    done = subprocess.run(
        [sys.executable, "-m", "paynotify", "events", "replay", "--account", "shop", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    audit = subprocess.run(
        [sys.executable, "-m", "paynotify", "events", "audit", "--json", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    (entry,) = [json.loads(line) for line in audit.stdout.splitlines()]
    assert entry["operator"] == "cli:cron"
