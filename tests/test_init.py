"""`paynotify init DIR` writes a service that `paynotify serve` runs as shipped: a subprocess on a
free port of 127.0.0.1 is sent notifications genuinely signed with the keys init wrote."""

from __future__ import annotations

import json
import os
import shlex
import stat
import tomllib
from pathlib import Path

import httpx
import pytest
from _servers import subprocess_server
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from paynotify_alipay import testing as alipay_testing
from paynotify_unionpay import testing as unionpay_testing
from paynotify_wechatpay import testing as wx_testing

from paynotify import ConfigurationError
from paynotify.cli._init import init_project
from paynotify.cli._main import main

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _private_key(path: Path) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


def _signed_notifications(directory: Path) -> list[tuple[str, dict[str, str], bytes]]:
    """(path, headers, body) of one payment per account, made with the keys init wrote."""
    keys = directory / "keys"
    accounts = tomllib.loads((directory / "paynotify.toml").read_text())["accounts"]
    alipay = alipay_testing.make_notify(
        _private_key(keys / "provider-side/alipay_private_key.pem"),
        app_id=accounts["shop-alipay"]["app_id"],
        out_trade_no="o-alipay",
    )
    v2 = wx_testing.make_v2_payment_notify(
        (keys / "wechatpay_v2_api_key").read_text().strip(),
        appid=wx_testing.APPID,
        mch_id=wx_testing.MCH_ID,
        out_trade_no="o-wechat-v2",
        sign_type="HMAC-SHA256",
    )
    v3_key = wx_testing.V3SigningKey(
        key_id=accounts["shop-wechat-v3"]["public_key_id"],
        private_key=_private_key(keys / "provider-side/wechatpay_v3_private_key.pem"),
        public_key_pem=(keys / "wechatpay_v3_public_key.pem").read_text(),
    )
    v3_headers, v3 = wx_testing.make_v3_transaction_notify(
        v3_key,
        (keys / "wechatpay_v3_apiv3_key").read_text().strip(),
        appid=wx_testing.APPID,
        mchid=wx_testing.MCH_ID,
        out_trade_no="o-wechat-v3",
    )
    leaf_key = _private_key(keys / "provider-side/unionpay_signing_key.pem")
    leaf = x509.load_pem_x509_certificate((keys / "unionpay_verify.pem").read_bytes())
    root = x509.load_pem_x509_certificate((keys / "unionpay_root.pem").read_bytes())
    middle = x509.load_pem_x509_certificate((keys / "unionpay_middle.pem").read_bytes())
    # Only the leaf signs; the root and middle keys are never needed to make a notification.
    chain = unionpay_testing.SigningChain(leaf_key, root, leaf_key, middle, leaf_key, leaf)
    unionpay = unionpay_testing.make_notify(chain, mer_id=unionpay_testing.MER_ID, order_id="ounionpay1")
    return [
        ("/shop-alipay/notify", FORM, alipay),
        ("/shop-wechat-v2/notify", {"content-type": "text/xml"}, v2),
        ("/shop-wechat-v3/notify", v3_headers, v3),
        ("/shop-unionpay/notify", FORM, unionpay),
    ]


def test_init_then_serve_delivers_genuinely_signed_notifications(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "service"
    assert main(["init", str(directory)]) == 0
    assert "paynotify serve --config" in capsys.readouterr().out
    config = directory / "paynotify.toml"
    # Started from elsewhere (the tests directory): subs.py is found next to the config.
    # At debug, for the access log that shows the forwarded client address (off at the default level).
    command = (
        "paynotify",
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        "--proxy-headers",
        "--log-level",
        "debug",
    )
    with subprocess_server(*command) as served, httpx.Client(base_url=served.base_url) as client:
        replies = []
        for path, headers, body in _signed_notifications(directory):
            forwarded = {**headers, "x-forwarded-for": "203.0.113.9"}
            replies.append(client.post(path, content=body, headers=forwarded))
        forged = client.post("/shop-alipay/notify", content=_signed_notifications(directory)[0][2][:-3])
        log = served.stop()
    assert [(r.status_code, r.content) for r in replies] == [
        (200, b"success"),
        (
            200,
            b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>",
        ),
        (204, b""),
        (200, b"ok"),
    ], log
    assert forged.content == b"fail"
    for account, order in [("shop-alipay", "o-alipay"), ("shop-wechat-v3", "o-wechat-v3")]:
        assert f"subs: {account} payment/succeeded order {order}" in log, log
    assert "203.0.113.9" in log  # --proxy-headers: the client address comes from the proxy's header

    assert main(["events", "--config", str(config), "list", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(e["order_id"] for e in events) == ["o-alipay", "o-wechat-v2", "o-wechat-v3", "ounionpay1"]
    assert {e["state"] for e in events} == {"done"}


def test_init_writes_secrets_as_owner_only_files_never_inline(tmp_path: Path) -> None:
    init_project(tmp_path)
    text = (tmp_path / "paynotify.toml").read_text()
    for secret in ("wechatpay_v2_api_key", "wechatpay_v3_apiv3_key"):
        assert (tmp_path / "keys" / secret).read_text().strip() not in text
        assert f'_file = "keys/{secret}"' in text
        assert stat.S_IMODE(os.stat(tmp_path / "keys" / secret).st_mode) == 0o600
    assert (tmp_path / "subs.py").exists()
    assert "paynotify serve --config paynotify.toml" in (tmp_path / "README.md").read_text()


def test_the_readme_curl_line_runs_as_written(tmp_path: Path) -> None:
    init_project(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    start = readme.index("curl -d")
    command = readme[start : readme.index("\n\n", start)]
    assert "\\\n" in command  # continued on the next line
    assert shlex.split(command.replace("\\\n", " ")) == [  # as a shell joins it
        "curl", "-d", '{"order_id": "order-1", "amount": "88.88", "notify": false}',
        "http://127.0.0.1:8001/_emulator/shop-alipay/orders",
    ]  # fmt: skip


def test_init_does_not_overwrite_without_force(tmp_path: Path) -> None:
    init_project(tmp_path)
    before = (tmp_path / "paynotify.toml").read_text()
    with pytest.raises(ConfigurationError, match="--force"):
        init_project(tmp_path)
    init_project(tmp_path, force=True)
    assert (tmp_path / "paynotify.toml").read_text() != before  # fresh keys


def test_the_example_config_says_how_to_make_its_keys(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).parent.parent / "examples" / "paynotify.toml"
    assert main(["serve", "--config", str(example), "--port", "0"]) == 2
    assert "paynotify init DIR" in capsys.readouterr().err
    assert "paynotify init DIR" in example.read_text()
