"""`paynotify serve`'s log (issues 23 and 27): with --log-format json every line is JSON, uvicorn's
included; at the default level one line per notification (no access log); at debug the access log,
without query strings (a return URL's carries the provider's `sign`)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from _servers import subprocess_server
from test_init import _signed_notifications

from paynotify.cli._init import init_project

SIGN = "c2VjcmV0LXNpZ24tb2YtdGhlLXJldHVybg"


def served_log(directory: Path, *options: str) -> str:
    init_project(directory)
    # A warning at import of the subscribers' module: Python writes it to stderr unless logged.
    subs = directory / "subs.py"
    subs.write_text(subs.read_text() + '\nimport warnings\nwarnings.warn("subs: a warning of its own")\n')
    command = ("paynotify", "serve", "--config", str(directory / "paynotify.toml"), "--port", "0", *options)
    with subprocess_server(*command) as served, httpx.Client(base_url=served.base_url) as client:
        for path, headers, body in _signed_notifications(directory):
            assert client.post(path, content=body, headers=headers).status_code < 300
        client.get(f"/shop-alipay/return?out_trade_no=o-1&sign={SIGN}&sign_type=RSA2")
        log: str = served.stop()
    return log


def test_json_makes_every_line_json_and_writes_one_line_per_notification(tmp_path: Path) -> None:
    log = served_log(tmp_path / "svc", "--log-format", "json")
    # init's subs.py logs through the same root logger: its lines are JSON too.
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert "uvicorn.error" in loggers
    assert any(
        "subs: a warning of its own" in line["message"] for line in lines if line["logger"] == "py.warnings"
    )
    assert "uvicorn.access" not in loggers  # off at the default level
    for order in ("o-alipay", "o-wechat-v2", "o-wechat-v3", "ounionpay1"):
        ours = [line for line in lines if line["logger"] == "paynotify" and order in line["message"]]
        assert len(ours) == 1, ours
    assert SIGN not in log


def test_the_access_log_at_debug_has_no_query_strings(tmp_path: Path) -> None:
    log = served_log(tmp_path / "svc", "--log-level", "debug")
    access = [line for line in log.splitlines() if "uvicorn.access" in line]
    assert any("POST /shop-alipay/notify HTTP/1.1" in line for line in access), log
    assert any("GET /shop-alipay/return HTTP/1.1" in line for line in access), log
    assert SIGN not in log
    assert "out_trade_no=o-1" not in log
    assert "start-up heap frozen" in log  # gc.freeze after start-up


def test_json_at_debug_makes_the_access_log_json_without_query_strings(tmp_path: Path) -> None:
    log = served_log(tmp_path / "svc", "--log-format", "json", "--log-level", "debug")
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    access = [line["message"] for line in lines if line["logger"] == "uvicorn.access"]
    assert any("POST /shop-alipay/notify HTTP/1.1" in message for message in access), log
    assert any("GET /shop-alipay/return HTTP/1.1" in message for message in access), log
    assert SIGN not in log
    assert "out_trade_no=o-1" not in log
