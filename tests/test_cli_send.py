"""`paynotify send` by subprocess (issue 23): against a service `init` wrote and `serve` runs, each
provider's test notification is signed with the keys init wrote, verified by the service and
delivered; one signed with another key is refused (exit 1); a service that is not there is exit 3;
an account without test keys, or a refund WeChat Pay v2 would confirm, is a message and exit 2."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from _servers import subprocess_server
from test_cli_robust import paynotify

from paynotify import EventState, InboundRequest, Kind, Notifier, SampleNotification
from paynotify.cli._init import create_store, init_project

SENDS = [
    ("shop-alipay", "payment", "ali-order-1"),
    ("shop-alipay", "refund", "ali-order-1"),
    ("shop-wechat-v2", "payment", "wx2-order-1"),
    ("shop-wechat-v3", "payment", "wx3-order-1"),
    ("shop-wechat-v3", "refund", "wx3-order-1"),
    ("shop-unionpay", "payment", "unionpay20261207001"),
    ("shop-unionpay", "refund", "unionpay20261207001"),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("send") / "svc"
    init_project(directory)
    create_store(directory / "paynotify.toml")
    command = ("paynotify", "serve", "--config", str(directory / "paynotify.toml"), "--port", "0")
    with subprocess_server(*command) as served:
        yield directory, served.base_url
        served.stop()


@pytest.mark.parametrize(("account", "kind", "order"), SENDS)
def test_send_signs_with_the_test_keys_and_the_service_delivers_it(
    service: tuple[Path, str], account: str, kind: str, order: str
) -> None:
    directory, base = service
    out, _ = paynotify("send", account, "--kind", kind, "--order", order, "--amount", "1.00",
                       "--to", base, "--config", "paynotify.toml", cwd=directory, code=0)  # fmt: skip
    assert f"-> POST {base}/{account}/notify: " in out
    assert out.rstrip().endswith(": acknowledged")
    listed, _ = paynotify("events", "list", "--json", "--account", account, "--config", "paynotify.toml",
                          cwd=directory, code=0)  # fmt: skip
    events = [json.loads(line) for line in listed.splitlines()]
    wanted = [e for e in events if e["kind"] == kind]
    assert [e["state"] for e in wanted] == ["done"], events


def test_a_notification_signed_with_another_key_is_not_acknowledged(
    service: tuple[Path, str], tmp_path: Path
) -> None:
    directory, base = service
    # A copy of the service whose provider-side key is another one: its signature cannot verify.
    copy = tmp_path / "svc"
    shutil.copytree(directory, copy)
    other = init_project(tmp_path / "other")
    assert other
    key = "keys/provider-side/alipay_private_key.pem"
    (copy / key).write_bytes((tmp_path / "other" / key).read_bytes())
    to = f"{base}/shop-alipay/notify"
    out, _ = paynotify("send", "shop-alipay", "--order", "forged-1", "--amount", "1.00", "--to", to,
                       "--config", "paynotify.toml", cwd=copy, code=1)  # fmt: skip
    assert ": 200 'fail': NOT acknowledged" in out


def test_a_service_that_is_not_there_is_exit_3(service: tuple[Path, str]) -> None:
    directory, _ = service
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]  # bound, never listening: connections are refused
        _, err = paynotify("send", "shop-alipay", "--order", "o-1", "--amount", "1.00", "--to",
                           f"http://user:pass-word@127.0.0.1:{free}", cwd=directory, code=3)  # fmt: skip
    assert f"http://127.0.0.1:{free}/shop-alipay/notify: no answer: ConnectError" in err
    assert "pass-word" not in err  # a URL's user info is never shown


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["shop-alipay", "--amount", "1.001"], "at most two decimals"),
        (["shop-alipay", "--amount", "0"], "must be positive"),
        (["shop-alipay", "--amount", "1", "--to", "ftp://x"], "is not an http(s) URL"),
        (["shop-alipay", "--amount", "1", "--to", "http://[::1"], "is not an http(s) URL"),
        (["shop-alipay", "--amount", "1e400"], "at most 9999999999.99"),
        (["nope", "--amount", "1"], "no account 'nope' (configured: shop-alipay,"),
        (["shop-alipay", "--amount", "1", "--refund-id", "r-1"], "--refund-id is for --kind refund"),
        (["shop-wechat-v2", "--kind", "refund", "--amount", "1"], "confirms each refund"),
    ],
)
def test_usage_and_configuration_errors_are_exit_2(
    service: tuple[Path, str], args: list[str], says: str
) -> None:
    directory, _ = service
    _, err = paynotify("send", *args, "--order", "o-1", cwd=directory, code=2)
    assert says in err


def test_an_account_without_its_test_key_is_exit_2(tmp_path: Path) -> None:
    init_project(tmp_path / "svc")
    (tmp_path / "svc/keys/provider-side/wechatpay_v3_private_key.pem").unlink()
    _, err = paynotify("send", "shop-wechat-v3", "--order", "o-1", "--amount", "1.00", "--config",
                       "svc/paynotify.toml", cwd=tmp_path, code=2)  # fmt: skip
    assert "cannot read the test key" in err
    assert "wechatpay_v3_private_key.pem" in err


async def test_every_sample_verifies_in_process_a_v2_refund_once_refunds_are_not_confirmed(
    tmp_path: Path,
) -> None:
    init_project(tmp_path)
    config = tmp_path / "paynotify.toml"
    text = config.read_text().replace('store = "sqlite:///paynotify-events.db"', 'store = "memory://"')
    config.write_text(
        text.replace('sign_type = "HMAC-SHA256"', 'sign_type = "HMAC-SHA256"\nconfirm_refunds = false')
    )
    notifier = Notifier.from_config(config)
    async with notifier:
        for account, kind, order in [*SENDS, ("shop-wechat-v2", "refund", "wx2-order-1")]:
            found = notifier.accounts[account]
            sample = SampleNotification(Kind(kind), order, Decimal("12.34"))
            made = found.provider.sample_notification(found, tmp_path, sample)
            assert made is not None
            headers = {name.lower(): value for name, value in made.headers.items()}  # as HTTP gives them
            inbound = InboundRequest(made.method, made.channel, headers, made.query, made.body)
            reply = await notifier.handle(account, inbound)
            assert (reply.status, reply.body) == (found.provider.ack().status, found.provider.ack().body)
        events = await notifier.store.find(limit=100)
    assert len(events) == len(SENDS) + 1
    assert {e.state for e in events} == {EventState.DONE}
    results = [json.loads(e.result_json) for e in events]
    refunds = [r for r in results if r["kind"] == "refund"]
    assert len(refunds) == 4
    assert {r["refund_amount"] for r in refunds} == {"12.34"}
    assert {r["amount"] for r in results if r["kind"] == "payment"} == {"12.34"}
