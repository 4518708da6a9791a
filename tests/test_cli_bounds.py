"""The CLI at its edges (issues 23 and 25): out-of-range numbers and dates, empty or mistyped store
URLs, options after the action, a quiet night for cron, id prefixes, bad paths, and serve stopped
by a signal: each a message and an exit code, never a traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli_guards import fill

from paynotify import EventQuery, EventState, UnhandledEvent, open_store
from paynotify._cli import main


@pytest.fixture
def url(tmp_path: Path) -> str:
    made = f"sqlite:///{tmp_path / 'events.db'}"
    fill(made, done=3)
    return made


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["purge", "--older-than", "1e300"], "at most 36500"),
        (["purge", "--older-than", "inf"], "at most 36500"),
        (["purge", "--older-than", "nan"], "at most 36500"),
        (["list", "--until", "0001-01-01T00:00+14:00"], "out of the range of times"),
        (["list", "--since", "9999-12-31T23:59:59-14:00"], "out of the range of times"),
        (["purge", "--until", "0001-01-01T00:00+14:00", "--dry-run"], "out of the range of times"),
        (["list", "--limit", str(10**20)], "from 1 to 1000000"),
        (["list", "--since", "yesterday"], "is not a time"),
    ],
)
def test_out_of_range_arguments_are_usage_errors(
    url: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["events", "--store", url, *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_times_ago_select_recent_events(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--store", url, "list", "--json", "--since", "1h"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["events", "--store", url, "list", "--json", "--until", "1h"]) == 0
    assert capsys.readouterr().out == ""


def test_an_empty_store_url_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    os.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["events", "--store", "", "list"])
    assert exit_.value.code == 2
    assert "empty store URL" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no ./paynotify.db made


def test_a_mistyped_sqlite_file_is_refused_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "evnets.db"
    assert main(["events", "--store", f"sqlite:///{typo}", "list"]) == 2
    assert f"no SQLite store at {typo}" in capsys.readouterr().err
    assert not typo.exists()


def test_store_options_are_taken_after_the_action_too(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "list", "--json", "--store", url]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["events", "list"]) == 2
    assert "give --config FILE or --store URL" in capsys.readouterr().err
    assert main(["events", "--store", url, "list", "--config", "x.toml"]) == 2


def test_nothing_to_retry_is_a_quiet_night_not_an_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--store", url, "retry", "--dead"]) == 0
    assert capsys.readouterr().out == "nothing to retry\n"
    assert main(["events", "--store", url, "replay", "--rejected", "--json"]) == 0
    assert capsys.readouterr().out == '{"nothing": true}\n'
    assert main(["events", "--store", url, "retry"]) == 2  # no selection at all: a usage mistake


def test_show_takes_a_unique_prefix(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--store", url, "list", "--json"]) == 0
    ids = [line.split('"event_id": "')[1][:32] for line in capsys.readouterr().out.splitlines()]
    prefix = ids[0][:8]
    assert main(["events", "--store", url, "show", prefix]) == 0
    assert ids[0] in capsys.readouterr().out
    assert main(["events", "--store", url, "show", "abc"]) == 2  # too short to be a prefix
    assert "6 to 31 hex digits" in capsys.readouterr().err


def test_an_ambiguous_prefix_says_how_many_match(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def two_alike() -> None:
        store = open_store(url)
        for tail in ("0" * 26, "1" * 26):
            entry = UnhandledEvent(provider="examplepay", account="shop", event_type="X",
                                   event_id="abcdef" + tail, raw={})  # fmt: skip
            await store.record(entry, EventState.UNHANDLED, reason=None)
        await store.close()

    asyncio.run(two_alike())
    assert main(["events", "--store", url, "show", "abcdef"]) == 2
    assert "2 events start with 'abcdef'" in capsys.readouterr().err
    assert main(["events", "--store", url, "show", "abcdef1"]) == 0


def test_demo_in_a_missing_directory_is_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--db", "/nonexistent-dir/x.db"]) == 2
    assert "no directory /nonexistent-dir" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve(config: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paynotify",
            "serve",
            "--config",
            str(config),
            "--port",
            str(free_port()),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    assert main(["init", str(tmp_path / "svc")]) == 0
    return tmp_path / "svc" / "paynotify.toml"


def _started(process: subprocess.Popen[str], seconds: float = 20) -> list[str]:
    assert process.stderr is not None
    lines = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        if "Uvicorn running on" in line or not line:
            return lines
    raise AssertionError("serve did not start: " + "".join(lines))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)])
def test_serve_stops_quietly_on_a_signal_and_says_where_it_serves(
    config: Path, sig: signal.Signals, code: int
) -> None:
    process = _serve(config, "--ops-port", str(free_port()))
    head = "".join(_started(process))
    process.send_signal(sig)
    _, rest = process.communicate(timeout=30)
    assert process.returncode == code
    assert "Traceback" not in head + rest
    assert "KeyboardInterrupt" not in head + rest
    # Every account's URLs and the ops port, to copy into the provider's console.
    assert "account 'shop-alipay' (alipay): notify URL http://127.0.0.1:" in head
    assert "account 'shop-alipay' (alipay): return URL http://127.0.0.1:" in head
    assert "/shop-wechat-v3/notify" in head
    assert "/readyz" in head


@pytest.mark.parametrize("field", ["account", "order_id", "provider", "kind"])
def test_no_store_is_asked_for_a_nul(field: str) -> None:
    with pytest.raises(ValueError, match="NUL"):
        EventQuery(**{field: "a\x00b"})  # type: ignore[arg-type]
