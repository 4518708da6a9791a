"""The CLI by subprocess, as cron and an operator at 3 a.m. run it: every bad number, date, path or
store URL is a message and exit 2 (never a traceback), options follow the action too, an empty
selection is a quiet exit 0, ids may be shortened, and `serve` says where it listens and stops
quietly on SIGINT and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli_guards import fill

from paynotify.cli._init import init_project

TIMEOUT = 60


def paynotify(*args: str, cwd: Path, code: int) -> tuple[str, str]:
    """Run `paynotify ARGS` in `cwd`; its stdout and stderr, after checking its exit status and
    that nothing ended in a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "paynotify", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done.stdout, done.stderr


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    fill(url, done=3)
    return url


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["purge", "--older-than", "1e300"], "--older-than"),
        (["purge", "--older-than", "inf"], "--older-than"),
        (["purge", "--older-than", "nan"], "--older-than"),
        (["purge", "--until", "0001-01-01T00:00+14:00"], "outside years 1 to 9999"),
        (["list", "--until", "0001-01-01T00:00+14:00"], "outside years 1 to 9999"),
        (["list", "--since", "9999-12-31T23:59:59-14:00"], "outside years 1 to 9999"),
        (["purge", "--since", "9999-12-31T23:59:59-14:00"], "outside years 1 to 9999"),
        (["list", "--since", "99999999999d"], "neither a time ago"),
        (["list", "--limit", str(10**20)], "--limit"),
        (["list", "--since", "yesterday"], "neither a time ago"),
    ],
)
def test_out_of_range_numbers_and_dates_are_usage_errors(
    store: str, tmp_path: Path, args: list[str], says: str
) -> None:
    _, err = paynotify("events", "--store", store, *args, cwd=tmp_path, code=2)
    assert "error: argument" in err
    assert says in err


@pytest.mark.parametrize("url", ["", " "])
def test_an_empty_store_url_is_refused_and_opens_nothing(tmp_path: Path, url: str) -> None:
    _, err = paynotify("events", "--store", url, "list", cwd=tmp_path, code=2)
    assert "empty store URL" in err
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_file_that_is_not_there_is_refused_not_created(tmp_path: Path) -> None:
    _, err = paynotify("events", "--store", "sqlite:///typo.db", "list", cwd=tmp_path, code=2)
    assert "no SQLite store at 'typo.db'" in err
    assert not (tmp_path / "typo.db").exists()


def test_options_may_follow_the_action(store: str, tmp_path: Path) -> None:
    made = init_project(tmp_path / "svc")
    config = tmp_path / "svc" / "paynotify.toml"
    # The store of a fresh project is made by serve; an empty one stands in for it here.
    fill("sqlite:///" + str(tmp_path / "svc" / "paynotify-events.db"), done=1)
    assert made
    out, _ = paynotify("events", "list", "--config", str(config), cwd=tmp_path, code=0)
    assert out.startswith("EVENT_ID")
    out, _ = paynotify("events", "list", "--store", store, "--json", cwd=tmp_path, code=0)
    assert len(out.splitlines()) == 3
    _, err = paynotify("events", "--store", store, "list", "--config", str(config), cwd=tmp_path, code=2)
    assert "exactly one of --config FILE or --store URL" in err
    _, err = paynotify("events", "list", cwd=tmp_path, code=2)
    assert "exactly one of" in err


@pytest.mark.parametrize("action", ["retry", "replay"])
def test_nothing_to_do_is_a_quiet_success(store: str, tmp_path: Path, action: str) -> None:
    out, _err = paynotify("events", "--store", store, action, "--dead", cwd=tmp_path, code=0)
    assert out == f"nothing to {action}\n"
    out, _ = paynotify("events", "--store", store, action, "--dead", "--json", cwd=tmp_path, code=0)
    assert json.loads(out) == {"nothing": True, "ids": []}
    # Naming no selection at all is still a usage error: the command cannot mean anything.
    paynotify("events", "--store", store, action, cwd=tmp_path, code=2)


def test_since_and_until_take_a_time_ago(store: str, tmp_path: Path) -> None:
    out, _ = paynotify("events", "--store", store, "list", "--json", "--since", "1h", cwd=tmp_path, code=0)
    assert len(out.splitlines()) == 3
    for ago in ("30m", "2d", "1w", "3600s"):
        out, _ = paynotify("events", "--store", store, "list", "--json", "--until", ago, cwd=tmp_path, code=0)
        assert out == ""
    # A time ago is a count of units back from now, never a signed offset.
    paynotify("events", "--store", store, "list", "--since", "-1h", cwd=tmp_path, code=2)


def test_an_unambiguous_id_prefix_is_enough(store: str, tmp_path: Path) -> None:
    out, _ = paynotify("events", "--store", store, "list", "--json", cwd=tmp_path, code=0)
    ids = [json.loads(line)["event_id"] for line in out.splitlines()]
    shown, _ = paynotify("events", "--store", store, "show", ids[0][:8], cwd=tmp_path, code=0)
    assert json.loads(shown)["event_id"] == ids[0]
    # Two ids made to share a prefix: the prefix names neither, and the error counts them.
    path = store.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        for i, event_id in enumerate(ids[1:]):
            db.execute(
                "UPDATE paynotify_events SET event_id = ? WHERE event_id = ?",
                (f"abcd{i}" + "0" * 27, event_id),
            )
    db.close()
    _, err = paynotify("events", "--store", store, "show", "abcd", cwd=tmp_path, code=2)
    assert "'abcd' is ambiguous: 2 events" in err
    # The candidates, to pick from.
    assert "abcd0" + "0" * 27 in err
    assert "abcd1" + "0" * 27 in err
    shown, _ = paynotify("events", "--store", store, "show", "abcd1", cwd=tmp_path, code=0)
    assert json.loads(shown)["event_id"] == "abcd1" + "0" * 27
    _, err = paynotify("events", "--store", store, "show", "abc", cwd=tmp_path, code=2)
    assert "too short" in err
    _, err = paynotify("events", "--store", store, "show", "ffffffff", cwd=tmp_path, code=2)
    assert "no event 'ffffffff'" in err
    out, _ = paynotify("events", "--store", store, "replay", "abcd0", "--json", cwd=tmp_path, code=0)
    assert json.loads(out)["ids"] == ["abcd0" + "0" * 27]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["demo", "--db", "/nonexistent/x.db"], "no directory '/nonexistent'"),
        (["init", "/dev/null/svc"], "Not a directory: '/dev/null/svc'"),
        (["serve", "--config", "/etc"], "no config file '/etc'"),
        (["serve", "--config", "missing.toml"], "no config file 'missing.toml'"),
        (["worker", "--config", "missing.toml"], "no config file 'missing.toml'"),
        (["events", "--config", "missing.toml", "list"], "no config file 'missing.toml'"),
        (["webhooks", "list", "--config", "missing.toml"], "no config file 'missing.toml'"),
        (["serve", "--config", "x.toml", "--port", "70000"], "a port must be 0 to 65535"),
        (["serve", "--config", "x.toml", "--timeout-keep-alive", "inf"], "--timeout-keep-alive"),
    ],
)
def test_a_bad_path_or_argument_is_a_message(tmp_path: Path, args: list[str], says: str) -> None:
    _, err = paynotify(*args, cwd=tmp_path, code=2)
    assert says in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_says_where_it_listens_and_stops_quietly(tmp_path: Path, sig: signal.Signals) -> None:
    init_project(tmp_path / "svc")
    port, ops = free_port(), free_port()
    log = tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYNOTIFY_CONSOLE")}
    with log.open("w") as err:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paynotify",
                "serve",
                "--config",
                "svc/paynotify.toml",
                "--port",
                str(port),
                "--ops-port",
                str(ops),
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            # The ops URLs are announced last, once the servers listen.
            while f"http://127.0.0.1:{ops}/metrics" not in log.read_text():
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            server.send_signal(sig)
            code = server.wait(timeout=TIMEOUT)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=TIMEOUT)
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "KeyboardInterrupt" not in text, text
    assert code == 0, text
    base = f"http://127.0.0.1:{port}"
    assert f"notify {base}/shop-alipay/notify, return {base}/shop-alipay/return" in text
    assert f"notify {base}/shop-wechat-v3/notify" in text
    assert f"http://127.0.0.1:{ops}/healthz" in text
    assert f"http://127.0.0.1:{ops}/metrics" in text
