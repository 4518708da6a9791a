"""The CLI by subprocess (issue 23): global options before or after the command, `init` making the
store the README's next command reads, every reading command refusing a SQLite file that is not
there, and `demo --db` refusing a path that is no database with a message."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest
from _servers import subprocess_server
from test_cli_robust import TIMEOUT, free_port, paynotify

from paynotify.cli._arguments import hoist_global_options


@pytest.fixture
def service(tmp_path: Path) -> Path:
    out, _ = paynotify("init", "svc", cwd=tmp_path, code=0)
    assert "wrote svc/paynotify.toml" in out
    return tmp_path / "svc"


def test_the_readme_that_init_writes_runs_as_written(service: Path) -> None:
    # Before any serve: init made the (empty) store the command reads.
    assert "`paynotify events list --config paynotify.toml`" in (service / "README.md").read_text()
    out, _ = paynotify("events", "list", "--config", "paynotify.toml", cwd=service, code=0)
    assert out.startswith("EVENT_ID")
    assert len(out.splitlines()) == 1
    # Its send line, with nothing listening where it sends: the command itself is well formed.
    line = "paynotify send shop-alipay --order o-1 --amount 1.00 --config paynotify.toml"
    assert f"`{line}`" in (service / "README.md").read_text()
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        to = f"http://127.0.0.1:{bound.getsockname()[1]}"
        _, err = paynotify(*line.split()[1:], "--to", to, cwd=service, code=3)
    assert "no answer" in err


@pytest.mark.parametrize(
    "line",
    [
        ["--config", "paynotify.toml", "events", "list", "--json"],
        ["--config=paynotify.toml", "events", "list", "--json"],
        ["events", "--config", "paynotify.toml", "list", "--json"],
        ["events", "list", "--json", "--config", "paynotify.toml"],
        ["--store", "sqlite:///paynotify-events.db", "events", "list", "--json"],
        ["--config", "paynotify.toml", "expectations", "list", "--json"],
        ["expectations", "list", "--json", "--config", "paynotify.toml"],
    ],
)
def test_global_options_go_before_or_after_the_command(service: Path, line: list[str]) -> None:
    out, _ = paynotify(*line, cwd=service, code=0)
    assert out == ""


def test_log_options_before_the_command_reach_serve_and_worker(service: Path) -> None:
    # The worker refuses inline delivery: the log options themselves were taken.
    _, err = paynotify("--log-format", "json", "--log-level", "debug", "worker", "--config",
                       "paynotify.toml", cwd=service, code=2)  # fmt: skip
    assert 'set delivery = "queued"' in err
    _, err = paynotify("worker", "--config", "paynotify.toml", "--log-format", "yaml", cwd=service, code=2)
    assert "invalid choice: 'yaml'" in err
    # An option no command takes there is still refused, by argparse, as a usage error.
    _, err = paynotify("--store", "memory://", "init", "x", cwd=service, code=2)
    assert "unrecognized arguments: --store memory://" in err


@pytest.mark.parametrize(
    "command",
    [
        ["events", "list"],
        ["expectations", "list"],
        ["expect", "shop-alipay", "o-1", "--amount", "1.00", "--until", "1h"],
        ["query", "shop-alipay", "o-1"],
        ["reconcile", "shop-alipay", "--date", "2026-01-31"],
    ],
)
def test_a_config_naming_a_missing_sqlite_file_is_refused_not_created(
    service: Path, command: list[str]
) -> None:
    (service / "paynotify-events.db").unlink()
    _, err = paynotify(*command, "--config", "paynotify.toml", cwd=service, code=2)
    assert "paynotify-events.db' (" + command[0] + " never creates one" in err
    assert not (service / "paynotify-events.db").exists()


@pytest.mark.parametrize(
    ("db", "says"),
    [
        ("/etc/passwd", "cannot open SQLite store '/etc/passwd': file is not a database"),
        (".", "--db '.' is not a file"),
        ("/nonexistent/x.db", "no directory '/nonexistent'"),
    ],
)
def test_demo_refuses_a_db_that_is_no_database(tmp_path: Path, db: str, says: str) -> None:
    _, err = paynotify("demo", "--db", db, cwd=tmp_path, code=2)
    assert says in err
    assert len(err.splitlines()) == 1, err


def test_serve_announces_the_console_url_when_it_serves_one(service: Path) -> None:
    ops = free_port()
    env = {"PAYNOTIFY_CONSOLE_TOKEN": "t" * 32}
    command = ("paynotify", "serve", "--config", "paynotify.toml", "--port", "0", "--ops-port", str(ops))
    with subprocess_server(*command, cwd=service, env=env) as served:
        deadline = time.monotonic() + TIMEOUT
        # Announced once both servers listen, just after uvicorn's "running on" line.
        while f"http://127.0.0.1:{ops}/console/" not in served.log.decode():
            assert time.monotonic() < deadline, served.log.decode()
            time.sleep(0.05)
        log = served.stop()
    # Which "running on" line comes first is uvicorn's affair: the ports are read from the URLs.
    announced = r"\(unionpay\): notify (http://[\d.:]+)/shop-unionpay/notify, return (http://[\d.:]+)/"
    urls = re.search(announced, log)
    assert urls is not None, log
    assert urls[1] == urls[2] != f"http://127.0.0.1:{ops}"
    assert f"http://127.0.0.1:{ops}/healthz, http://127.0.0.1:{ops}/readyz" in log
    assert "t" * 32 not in log
    assert "Traceback" not in log


def test_nothing_to_list_or_retry_is_exit_0_with_a_message(service: Path) -> None:
    out, err = paynotify("webhooks", "list", "--config", "paynotify.toml", cwd=service, code=0)
    assert (out, err) == ("", "no [[webhooks]] in 'paynotify.toml': nothing to list\n")
    _, err = paynotify("webhooks", "test", "orders", "--config", "paynotify.toml", cwd=service, code=2)
    assert "has no [[webhooks]]" in err
    for action in ("retry", "replay"):
        out, _ = paynotify("events", action, "--dead", "--config", "paynotify.toml", cwd=service, code=0)
        assert out == f"nothing to {action}\n"
    out, _ = paynotify("events", "purge", "--config", "paynotify.toml", cwd=service, code=0)
    assert out.startswith("purged 0 events")


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["worker"],
        ["events", "list"],
        ["expectations", "list"],
        ["query", "shop", "o-1"],
        ["reconcile", "shop"],
        ["webhooks", "list"],
        ["send", "shop", "--order", "o-1", "--amount", "1.00"],
    ],
)
def test_a_config_that_is_not_toml_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "bad.toml").write_text("store = \n[accounts")
    _, err = paynotify(*command, "--config", "bad.toml", cwd=tmp_path, code=2)
    assert err == "paynotify: config 'bad.toml' is not valid TOML: Invalid value (at line 1, column 9)\n"


def test_serve_with_workers_announces_the_urls_too(service: Path) -> None:
    port = free_port()
    command = ("paynotify", "serve", "--config", "paynotify.toml", "--port", str(port), "--workers", "2")
    with subprocess_server(*command, cwd=service) as served:
        log = served.stop()
    assert (
        f"notify http://127.0.0.1:{port}/shop-alipay/notify, return http://127.0.0.1:{port}/shop-alipay/return"
        in log
    )
    assert "Traceback" not in log


def test_an_expectations_limit_out_of_range_is_a_usage_error(service: Path) -> None:
    for limit in ("0", str(10**20)):
        _, err = paynotify("expectations", "list", "--limit", limit, cwd=service, code=2)
        assert "argument --limit: must be 1 or more and at most 1000000000" in err


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (["--config", "a.toml", "events", "list"], ["events", "list", "--config", "a.toml"]),
        (
            ["--config=a.toml", "--log-format", "json", "serve"],
            ["serve", "--config=a.toml", "--log-format", "json"],
        ),
        # A value that is a command's name is still the option's value.
        (["--config", "events", "events", "list"], ["events", "list", "--config", "events"]),
        (["events", "list", "--config", "a.toml"], ["events", "list", "--config", "a.toml"]),
        # Anything else first is argparse's to judge, untouched.
        (["--version"], ["--version"]),
        (["--bogus", "1", "events", "list"], ["--bogus", "1", "events", "list"]),
        (["--config", "a.toml", "--help"], ["--config", "a.toml", "--help"]),
        (["--config"], ["--config"]),
    ],
)
def test_global_options_before_the_command_move_after_it(given: list[str], parsed: list[str]) -> None:
    assert hoist_global_options(given) == parsed
