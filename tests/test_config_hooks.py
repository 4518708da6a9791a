"""Hooks in TOML (issue 23): `checks`, `on_rejected`, `on_unhandled` as one "module:function" or a
list, in the file and in an `[accounts.NAME]` table (then for that account only); a check that
refuses records its name, and its reason when it gives one (`Refused`, `CheckFailed`)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from conftest import APP_ID, SECRET, example_notify
from test_cli_robust import paynotify
from test_notifier import request

from paynotify import EventState, Notifier, UnhandledEvent
from paynotify._config import load_config
from paynotify._registry import registry

HOOKS = """
from decimal import Decimal

from paynotify import CheckFailed, Refused

told = []
unhandled_seen = []


def not_blocked(result):
    return result.order_id != "blocked"


def amount_matches(result):
    return result.amount != Decimal("0.01")


async def with_reason(result):
    return Refused(f"order {result.order_id} is closed") if result.order_id == "closed" else True


def raising(result):
    if result.order_id == "raise":
        raise CheckFailed("no such order")


def tell(result, error):
    told.append((result.account, result.order_id, str(error)))


def unhandled(event):
    unhandled_seen.append(event.account)
"""


def write_service(directory: Path, shop_hooks: str) -> tuple[Path, str]:
    """A config with accounts `shop` and `other`; its hooks module has a name of its own (modules
    are imported once per process)."""
    module = f"hooks_{secrets.token_hex(4)}"
    (directory / f"{module}.py").write_text(HOOKS)
    (directory / "secret").write_text(SECRET)
    account = f'provider = "examplepay"\napp_id = "{APP_ID}"\nsecret_file = "secret"\n'
    config = directory / "paynotify.toml"
    config.write_text(
        f'store = "memory://"\nchecks = "{module}:not_blocked"\non_rejected = ["{module}:tell"]\n\n'
        f"[accounts.shop]\n{account}{shop_hooks.format(m=module)}\n[accounts.other]\n{account}"
    )
    return config, module


SHOP_HOOKS = (
    'checks = ["{m}:amount_matches", "{m}:with_reason", "{m}:raising"]\non_unhandled = "{m}:unhandled"\n'
)


async def test_a_refusal_records_the_checks_name_and_its_reason(tmp_path: Path) -> None:
    config, module = write_service(tmp_path, SHOP_HOOKS)
    notifier = Notifier.from_config(config)
    sent = [
        ("shop", "cheap", "0.01"),
        ("other", "cheap-elsewhere", "0.01"),  # shop's checks are shop's alone
        ("other", "blocked", "1.00"),  # the file's checks are every account's
        ("shop", "closed", "1.00"),
        ("shop", "raise", "1.00"),
        ("shop", "fine", "1.00"),
    ]
    async with notifier:
        for account, order, amount in sent:
            reply = await notifier.handle(account, request(example_notify(order, amount=amount)))
            assert reply.body == b"OK"
        events = {e.order_id: e for e in await notifier.store.find(limit=100)}
    rejected = {order: e.last_error for order, e in events.items() if e.state is EventState.REJECTED}
    assert rejected == {
        "cheap": "account 'shop': refused by check 'amount_matches'",
        "blocked": "account 'other': refused by check 'not_blocked'",
        "closed": "account 'shop': refused by check 'with_reason': order closed is closed",
        "raise": "account 'shop': refused by check 'raising': no such order",
    }
    assert events["cheap-elsewhere"].state is EventState.DONE
    assert events["fine"].state is EventState.DONE
    hooks = __import__(module)
    assert sorted(hooks.told) == sorted(
        (account, order, rejected[order]) for account, order, _ in sent if order in rejected
    )


async def test_an_accounts_unhandled_hook_sees_that_accounts_events_only(tmp_path: Path) -> None:
    config, module = write_service(tmp_path, SHOP_HOOKS)
    (hook,) = load_config(config, registry).hooks["on_unhandled"]
    for account in ("other", "shop", "other"):
        event = UnhandledEvent(
            provider="examplepay", account=account, event_type="X", event_id=account, raw={}
        )
        await hook(event)
    assert __import__(module).unhandled_seen == ["shop"]


@pytest.mark.parametrize(
    ("shop_hooks", "says"),
    [
        ("checks = 3\n", '[accounts.shop] checks takes "module:function" or a list of them'),
        ('on_rejected = "nowhere:tell"\n', "cannot import [accounts.shop] on_rejected hook 'nowhere:tell'"),
        ('on_unhandled = "no-colon"\n', 'a [accounts.shop] on_unhandled hook is "module:function"'),
    ],
)
def test_a_bad_hook_in_an_account_is_a_message(tmp_path: Path, shop_hooks: str, says: str) -> None:
    write_service(tmp_path, shop_hooks)
    _, err = paynotify("send", "shop", "--order", "o-1", "--amount", "1.00", cwd=tmp_path, code=2)
    assert says in err
