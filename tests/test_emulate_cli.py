"""`paynotify emulate`: its argument and configuration errors (exit 2, one clear line, no
traceback), the accounts it plays, and its order endpoint, in process (the walk with real
processes is tests/test_emulate_walk.py)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from _echo_provider import EchoProvider

from paynotify import Notifier, Registry, StarterAccount
from paynotify.cli._emulate import EmulatorApp, emulated_accounts
from paynotify.cli._init import init_project
from paynotify.cli._main import main

EMULATOR = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("service")
    init_project(directory, emulator=EMULATOR)
    return directory / "paynotify.toml"


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run `paynotify ARGV`, which must exit 2 without a traceback; its stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_a_missing_config_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, ["emulate", "--config", str(tmp_path / "nope.toml")])
    assert f"paynotify: no config file '{tmp_path / 'nope.toml'}'" in err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--port", "99999"], "a port must be 0 to 65535"),
        (["--port", "eighty"], "is not a port number"),
        (["--notify-to", "ftp://127.0.0.1:8000"], "is not an address like http://127.0.0.1:8001"),
        (["--notify-to", "http://127.0.0.1:8000/shop/notify"], "(no path)"),
        (["--notify-to", "http://127.0.0.1:99999"], "the port is out of range"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_are_usage_errors(
    service: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    assert message in _error(capsys, ["emulate", "--config", str(service), *arguments])


def test_init_refuses_an_emulator_address_that_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "is not an address like" in _error(capsys, ["init", str(tmp_path), "--emulator", "localhost"])
    assert not (tmp_path / "paynotify.toml").exists()


def test_a_config_with_no_account_on_the_emulators_port_says_what_each_needs(
    service: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(capsys, ["emulate", "--config", str(service), "--port", "8766"])
    assert "no account of" in err
    assert "can be emulated on port 8766" in err
    for account in ("shop-alipay", "shop-unionpay", "shop-wechat-v2", "shop-wechat-v3"):
        assert f"not emulated: {account}: base_url {EMULATOR}/{account}" in err


def test_an_account_without_query_keys_is_not_emulated(tmp_path: Path) -> None:
    init_project(tmp_path, emulator=EMULATOR)
    config = tmp_path / "paynotify.toml"
    text = config.read_text().replace('app_private_key_file = "keys/alipay_app_private_key.pem"\n', "")
    config.write_text(text)
    played, skipped = emulated_accounts(Notifier.from_config(config), tmp_path, 8765, "http://127.0.0.1:8000")
    assert sorted(played) == ["shop-unionpay", "shop-wechat-v2", "shop-wechat-v3"]
    assert skipped == ["shop-alipay: provider alipay has no emulator for it"]


def _app(service: Path) -> EmulatorApp:
    played, skipped = emulated_accounts(
        Notifier.from_config(service), service.parent, 8765, "http://127.0.0.1:8000"
    )
    assert skipped == []
    return EmulatorApp(played)


def _post(app: EmulatorApp, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=EMULATOR) as client:
            return await client.request(kwargs.pop("method", "POST"), path, **kwargs)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "not JSON"),
        (b"[1]", 400, "a JSON object"),
        (b'{"order_id": "o1"}', 400, "amount must be"),
        (b'{"order_id": "o1", "amount": "0"}', 400, "must be positive"),
        (b'{"order_id": "o1", "amount": "1.001"}', 400, "at most two decimals"),
        (b'{"order_id": "o1", "amount": "NaN"}', 400, "must be positive"),
        (b'{"order_id": "", "amount": "1"}', 400, "order_id must be"),
        (b'{"order_id": "o1", "amount": "1", "notify": "no"}', 400, "notify must be true or false"),
        (b'{"order_id": "o1", "amount": "1", "nofity": false}', 400, "unknown fields ['nofity']"),
        (b'{"order_id": "o1", "amount": "1", "notify_url": "file:///x"}', 400, "notify_url must be"),
        (b"x" * 20000, 413, "at most"),
    ],
)
def test_an_order_out_of_shape_is_refused_with_why(
    service: Path, body: bytes, status: int, message: str
) -> None:
    response = _post(_app(service), "/_emulator/shop-alipay/orders", content=body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_orders_of_an_account_not_emulated_and_other_paths_are_not_found(service: Path) -> None:
    app = _app(service)
    unknown = _post(app, "/_emulator/shop-paypal/orders", json={"order_id": "o1", "amount": "1"})
    assert unknown.status_code == 404
    assert "no emulated account 'shop-paypal'" in unknown.json()["error"]
    assert _post(app, "/shop-paypal/gateway.do").status_code == 404
    assert _post(app, "/_emulator/shop-alipay/orders", method="GET").status_code == 405
    listed = _post(app, "/_emulator", method="GET").json()["accounts"]
    assert [a["notify_url"] for a in listed if a["account"] == "shop-wechat-v3"] == [
        "http://127.0.0.1:8000/shop-wechat-v3/notify"
    ]


def test_a_dropped_order_is_paid_at_the_emulator_and_sent_nowhere(service: Path) -> None:
    app = _app(service)
    created = _post(
        app, "/_emulator/shop-wechat-v2/orders", json={"order_id": "o-1", "amount": 88.88, "notify": False}
    )
    assert created.status_code == 201
    answer = created.json()
    assert (answer["amount"], answer["notified"], answer["status"]) == ("88.88", False, None)
    emulator = app.accounts["shop-wechat-v2"].emulator.app
    assert emulator.orders["o-1"]["total_fee"] == "8888"


@pytest.mark.parametrize("seconds", [0.25, 60.0])
def test_first_query_after_is_when_the_sweeper_first_asks(tmp_path: Path, seconds: float) -> None:
    init_project(tmp_path, emulator=EMULATOR)
    config = tmp_path / "paynotify.toml"
    config.write_text(f"first_query_after = {seconds}\n" + config.read_text())
    notifier = Notifier.from_config(config)

    async def go() -> float:
        await notifier.store.open()
        try:
            record = await notifier.expect("shop-alipay", "o-1", amount="88.88", until=timedelta(days=1))
        finally:
            await notifier.store.close()
        return record.next_due - record.created_at

    assert asyncio.run(go()) == pytest.approx(seconds)


def test_first_query_after_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init_project(tmp_path, emulator=EMULATOR)
    config = tmp_path / "paynotify.toml"
    config.write_text("first_query_after = 0\n" + config.read_text())
    err = _error(capsys, ["emulate", "--config", str(config), "--port", "8765"])
    assert "first_query_after must be positive" in err


class _OldStyleProvider(EchoProvider):
    """A third party's provider written before `starter(emulator=...)`: no emulator, no parameter."""

    name = "old-style"

    @classmethod
    def starter(cls) -> StarterAccount:  # type: ignore[override]
        return StarterAccount("shop-old", {"note": "written by an old starter()"})


def test_init_still_takes_a_starter_without_the_emulator_parameter(tmp_path: Path) -> None:
    registry = Registry(group=None)
    registry.register(_OldStyleProvider)
    made = init_project(tmp_path, registry=registry)
    assert [(provider, account.account) for provider, account in made] == [("old-style", "shop-old")]
    assert 'note = "written by an old starter()"' in (tmp_path / "paynotify.toml").read_text()


def test_a_refund_needs_its_id_and_an_order_the_emulator_holds(service: Path) -> None:
    app = _app(service)
    refunds = "/_emulator/shop-wechat-v3/refunds"
    missing = _post(app, refunds, json={"order_id": "o-1", "amount": "1.00"})
    assert missing.status_code == 400
    assert "refund_id must be" in missing.json()["error"]
    unknown = _post(
        app, refunds, json={"order_id": "o-9", "refund_id": "r-1", "amount": "1.00", "notify": False}
    )
    assert unknown.status_code == 404
    assert "holds no order 'o-9'" in unknown.json()["error"]
    _post(
        app, "/_emulator/shop-wechat-v3/orders", json={"order_id": "o-1", "amount": "88.88", "notify": False}
    )
    done = _post(
        app, refunds, json={"order_id": "o-1", "refund_id": "r-1", "amount": "10.00", "notify": False}
    )
    assert done.status_code == 201
    assert (done.json()["refund_id"], done.json()["amount"]) == ("r-1", "10.00")
    assert app.accounts["shop-wechat-v3"].emulator.app.refunds[(None, "r-1")]["amount"]["refund"] == 1000


def test_a_refused_notification_is_resent_on_the_schedule_unless_resend_is_false(
    service: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "paynotify.emulate")
    played, _ = emulated_accounts(
        Notifier.from_config(service), service.parent, 8765, "http://127.0.0.1:8000"
    )
    app = EmulatorApp(played, resend_scale=0.0)  # the whole schedule at once
    down = "http://127.0.0.1:1/shop-wechat-v2/notify"  # nothing listens: every attempt refused

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=EMULATOR) as client:
            orders = "/_emulator/shop-wechat-v2/orders"
            once = await client.post(
                orders, json={"order_id": "o-1", "amount": 1, "notify_url": down, "resend": False}
            )
            resent = await client.post(orders, json={"order_id": "o-2", "amount": 1, "notify_url": down})
            await asyncio.wait_for(asyncio.gather(*app._resending), 30)
            return once.json(), resent.json()

    once, resent = asyncio.run(go())
    assert (once["status"], once["resending"], resent["status"], resent["resending"]) == (
        None,
        False,
        None,
        True,
    )
    assert "no reply" in once["error"]
    assert f"{down} after 16 attempts: given up" in caplog.text  # WeChat Pay: 1 + 15 resends
    assert caplog.text.count("attempts: given up") == 1  # o-1 was sent once, not resent
