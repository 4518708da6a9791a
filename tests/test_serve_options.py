"""`paynotify serve`'s deployment options and `paynotify --version`."""

from __future__ import annotations

import re
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from _servers import subprocess_server
from conftest import APP_ID, SECRET, example_notify

import paynotify.cli._serve
from paynotify.cli._main import main


def write_config(tmp_path: Path, store: str = "sqlite:///events.db") -> Path:
    (tmp_path / "secret").write_text(SECRET)
    config = tmp_path / "paynotify.toml"
    config.write_text(
        f'store = "{store}"\n[accounts.shop]\nprovider = "examplepay"\napp_id = "{APP_ID}"\n'
        'secret_file = "secret"\n'
    )
    return config


def test_version_names_core_and_every_provider_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"paynotify {version('paynotify')}"
    for dist in ("paynotify-alipay", "paynotify-wechatpay", "paynotify-unionpay"):
        assert f"{dist} {version(dist)}" in lines


def test_serve_help_says_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in [
        ("--log-level", "info"),
        ("--workers", "1"),
        ("--forwarded-allow-ips", "127.0.0.1"),
        ("--port", "8000"),
    ]:
        assert re.search(re.escape(option) + r".*?\(default: " + re.escape(default) + r"\)", text), option


@pytest.mark.parametrize("store", ["memory://", "sqlite:///:memory:"])
def test_several_workers_refuse_a_store_of_one_process(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, store)
    assert main(["serve", "--config", str(config), "--port", "0", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "--workers 2 needs a store the processes share" in err
    assert "--workers 1" in err


def test_serve_passes_its_options_to_uvicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[uvicorn.Config] = []
    real = paynotify.cli._serve.uvicorn_config

    def capture(app: Any, **settings: object) -> uvicorn.Config:
        seen.append(real(app, **settings))
        return seen[-1]

    async def no_serving(self: uvicorn.Server, sockets: object = None) -> None:
        pass

    monkeypatch.setattr(paynotify.cli._serve, "uvicorn_config", capture)
    monkeypatch.setattr(uvicorn.Server, "serve", no_serving)
    config = write_config(tmp_path)
    argv = ["serve", "--config", str(config), "--root-path", "/payments", "--log-level", "warning"]
    assert main([*argv, "--proxy-headers", "--forwarded-allow-ips", "10.0.0.1,10.0.0.2"]) == 0
    (made,) = seen
    assert (made.root_path, made.log_level, made.proxy_headers) == ("/payments", "warning", True)
    assert made.forwarded_allow_ips == "10.0.0.1,10.0.0.2"
    assert main(["serve", "--config", str(config)]) == 0
    assert (seen[1].root_path, seen[1].proxy_headers) == ("", False)  # off unless asked


def test_two_workers_on_one_sqlite_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    command = ("paynotify", "serve", "--config", str(config), "--port", "0", "--workers", "2")
    with subprocess_server(*command) as served, httpx.Client(base_url=served.base_url) as client:
        # The supervisor says where it listens before its workers accept connections.
        deadline = time.monotonic() + 30
        while served.log.count(b"Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        replies = []
        for i in range(6):
            headers, body = example_notify(f"o-{i % 3}")  # each order twice: duplicates in any process
            replies.append(client.post("/shop/notify", content=body, headers=headers).content)
        log = served.stop()
    assert replies == [b"OK"] * 6, log
    assert len(re.findall(r"Started server process", log)) == 2, log
    assert len(re.findall(r"delivered examplepay", log)) == 3, log
