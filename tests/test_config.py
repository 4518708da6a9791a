"""Notifier.from_config: TOML accounts, secrets from files and the environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import APP_ID, SECRET, example_notify
from test_notifier import request

from paynotify import ConfigurationError, EventState, Notifier, PaymentResult

CONFIG = """
store = "sqlite:///events.db"
body_limit = 32768
subscribers = [{ target = "test_config:remember", kind = "payment" }]

[accounts.shop]
provider = "examplepay"
app_id = "app-1"
secret_file = "secrets/examplepay.secret"

[accounts.shop-env]
provider = "examplepay"
app_id = "app-1"
secret_env = "PAYNOTIFY_TEST_SECRET"
"""

remembered: list[PaymentResult] = []


def remember(result: PaymentResult) -> None:
    remembered.append(result)


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "examplepay.secret").write_text(SECRET + "\n")
    path = tmp_path / "paynotify.toml"
    path.write_text(text)
    return path


async def test_accounts_secrets_store_and_subscribers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYNOTIFY_TEST_SECRET", SECRET)
    remembered.clear()
    notifier = Notifier.from_config(write_config(tmp_path))
    assert notifier.body_limit == 32768
    assert sorted(notifier.accounts) == ["shop", "shop-env"]
    secret = notifier.accounts["shop"].settings.secret
    assert secret.get_secret_value() == SECRET
    assert SECRET not in repr(secret)
    for account in ("shop", "shop-env"):
        reply = await notifier.handle(account, request(example_notify(order_id=account, app_id=APP_ID)))
        assert reply.body == b"OK"
    assert [r.account for r in remembered] == ["shop", "shop-env"]
    await notifier.aclose()
    assert (tmp_path / "events.db").exists()  # relative store paths are relative to the config file


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (("secret_env", "secret_env_missing"), "secret_env_missing"),
        (("PAYNOTIFY_TEST_SECRET", "PAYNOTIFY_UNSET_VARIABLE"), "PAYNOTIFY_UNSET_VARIABLE is not set"),
        (("secrets/examplepay.secret", "secrets/nope"), "cannot read"),
        (
            ('provider = "examplepay"\napp_id = "app-1"\nsecret_file', 'provider = "nopay"\nsecret_file'),
            "nopay",
        ),
        (("body_limit", "body_limits"), "unknown keys"),
        (("test_config:remember", "test_config:nothing_here"), "cannot import subscriber"),
        (("[accounts.shop]", "[accounts.shop"), "not valid TOML"),
    ],
)
def test_config_errors_are_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replace: tuple[str, str], message: str
) -> None:
    monkeypatch.setenv("PAYNOTIFY_TEST_SECRET", SECRET)
    path = write_config(tmp_path, CONFIG.replace(*replace, 1))
    with pytest.raises(ConfigurationError, match=message):
        Notifier.from_config(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigurationError, match="cannot read config"):
        Notifier.from_config("/nonexistent/paynotify.toml")


def test_a_setting_given_both_inline_and_from_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "app_id.txt").write_text(APP_ID)
    cfg = tmp_path / "paynotify.toml"
    cfg.write_text(
        f'[accounts.shop]\nprovider = "examplepay"\napp_id = "{APP_ID}"\napp_id_file = "app_id.txt"\n'
        'secret_file = "secret.txt"\n'
    )
    with pytest.raises(ConfigurationError, match="give app_id or app_id_file, not both"):
        Notifier.from_config(cfg)


@pytest.mark.parametrize(
    ("provider", "field", "settings"),
    [
        ("examplepay", "secret", f'app_id = "{APP_ID}"'),
        ("wechatpay-v2", "api_key", 'appid = "wx1"\nmch_id = "1900000109"'),
        ("wechatpay-v3", "apiv3_key", 'mchid = "1900000109"'),
    ],
)
def test_an_inline_secret_is_refused_naming_file_and_env(
    tmp_path: Path, provider: str, field: str, settings: str
) -> None:
    cfg = tmp_path / "paynotify.toml"
    cfg.write_text(f'[accounts.shop]\nprovider = "{provider}"\n{settings}\n{field} = "{"k" * 32}"\n')
    with pytest.raises(ConfigurationError) as caught:
        Notifier.from_config(cfg)
    message = str(caught.value)
    assert f"{field}_file" in message
    assert f"{field}_env" in message
    assert "k" * 32 not in message  # the error does not repeat the secret


async def test_subscribers_are_imported_from_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started from elsewhere: the module sits next to the config only.
    monkeypatch.chdir("/")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "subs_next_to_config", raising=False)
    (tmp_path / "secret").write_text(SECRET)
    subscriber = "seen = []\ndef on_event(result):\n    seen.append(result)\n"
    (tmp_path / "subs_next_to_config.py").write_text(subscriber)
    cfg = tmp_path / "paynotify.toml"
    cfg.write_text(
        f'subscribers = ["subs_next_to_config:on_event"]\nstore = "memory://"\n'
        f'[accounts.shop]\nprovider = "examplepay"\napp_id = "{APP_ID}"\nsecret_file = "secret"\n'
    )
    notifier = Notifier.from_config(cfg)
    reply = await notifier.handle("shop", request(example_notify(order_id="o-1", app_id=APP_ID)))
    assert reply.body == b"OK"
    assert [r.order_id for r in sys.modules["subs_next_to_config"].seen] == ["o-1"]
    await notifier.aclose()


refused_orders: list[str] = []
unhandled_seen: list[str] = []


def no_big_orders(result: PaymentResult) -> bool:
    return result.amount is None or result.amount < 100


def tell_rejected(result: PaymentResult, error: Exception) -> None:
    refused_orders.append(result.order_id)


def tell_unhandled(event: object) -> None:
    unhandled_seen.append(type(event).__name__)


async def test_check_and_rejected_hooks_come_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYNOTIFY_TEST_SECRET", SECRET)
    remembered.clear()
    refused_orders.clear()
    text = (
        'checks = ["test_config:no_big_orders"]\non_rejected = ["test_config:tell_rejected"]\n'
        'on_unhandled = ["test_config:tell_unhandled"]\n' + CONFIG
    )
    notifier = Notifier.from_config(write_config(tmp_path, text))
    big = await notifier.handle("shop", request(example_notify(order_id="big", amount="500.00")))
    small = await notifier.handle("shop", request(example_notify(order_id="small", amount="5.00")))
    assert (big.body, small.body) == (b"OK", b"OK")  # the refused one is on record, acknowledged
    assert [r.order_id for r in remembered] == ["small"]
    assert refused_orders == ["big"]
    [rejected] = await notifier.store.find(states=[EventState.REJECTED])
    assert "no_big_orders" in (rejected.last_error or "")  # the hook that refused it, by name
    await notifier.aclose()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # One "module:function" is a list of one (tests/test_config_hooks.py); a number is neither.
        ("checks = 3", 'takes "module:function" or a list of them'),
        ('checks = ["test_config"]', '"module:function"'),
        ('on_rejected = ["test_config:nowhere"]', "cannot import on_rejected hook"),
        ('on_unhandled = ["test_config:CONFIG"]', "is not callable"),
    ],
)
def test_hooks_in_the_config_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    monkeypatch.setenv("PAYNOTIFY_TEST_SECRET", SECRET)
    with pytest.raises(ConfigurationError, match=message):
        Notifier.from_config(write_config(tmp_path, line + "\n" + CONFIG))


def test_reload_accounts_swaps_the_accounts_of_the_file_and_keeps_them_on_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYNOTIFY_TEST_SECRET", SECRET)
    path = write_config(tmp_path)
    notifier = Notifier.from_config(path)
    store, subscribers = notifier.store, notifier.subscribers
    path.write_text(CONFIG.replace("[accounts.shop-env]", "[accounts.outlet]"))
    notifier.reload_accounts(path)
    assert sorted(notifier.accounts) == ["outlet", "shop"]
    assert (notifier.store, notifier.subscribers) == (store, subscribers)  # only the accounts reload
    path.write_text(CONFIG.replace("secrets/examplepay.secret", "secrets/nope"))
    with pytest.raises(ConfigurationError, match="cannot read"):
        notifier.reload_accounts(str(path))
    assert sorted(notifier.accounts) == ["outlet", "shop"]
