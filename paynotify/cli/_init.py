"""`paynotify init DIR`: a service that runs as written, with throwaway test keys.

It writes `paynotify.toml` (one account per installed first-party provider), the keys as files next
to it (secrets through `<field>_file`, never inline), `subs.py` with the subscriber the config names
(`subs:on_event`, imported from DIR), and a README. The provider's own side of each key pair (what
Alipay, WeChat Pay or UnionPay would sign with) goes to `keys/provider-side/`, so a test can send
the service genuinely signed notifications; paynotify never reads it.

Each account comes from a provider's `starter()` (the providers make their keys with their own
`testing` helpers): every installed provider that has one, first-party or third-party alike.
Each account is also given what a query needs (the merchant's throwaway keys) and a `base_url` on
`paynotify emulate`'s address (`emulator`, http://127.0.0.1:8001 unless told otherwise), so the
service works end to end against the providers' emulators (docs/develop-without-the-provider.md).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paynotify import ConfigurationError, Provider, Registry, StarterAccount
from paynotify import registry as default_registry
from paynotify.cli._emulate import DEFAULT_EMULATOR

__all__ = ["create_store", "init_project"]


_SUBS = '''"""Subscribers of this service; paynotify.toml names them as "subs:on_event".

paynotify imports them with this directory on sys.path, wherever `paynotify serve` is started.
Make side effects idempotent on result.event_id: a subscriber runs until it succeeds once per event.
"""

import logging

from paynotify import PaymentResult

log = logging.getLogger("subs")


def on_event(result: PaymentResult) -> None:
    log.info(
        "%s %s/%s order %s amount %s (event %s)",
        result.account,
        result.kind.value,
        result.status.value,
        result.order_id,
        result.amount,
        result.event_id,
    )
'''

_README = """# A paynotify service

Run it: `paynotify serve --config paynotify.toml` (then `paynotify events list --config paynotify.toml`).
Send it a notification signed with the test keys, from another terminal:
`paynotify send {account} --order o-1 --amount 1.00 --config paynotify.toml`.

Without the providers: `paynotify emulate --config paynotify.toml` plays every account's provider at
{emulator} (each account's `base_url` points there): create an order with

    curl -d '{{"order_id": "order-1", "amount": "88.88", "notify": false}}' \\
        {emulator}/_emulator/shop-alipay/orders

(`notify: true` sends its notification to the service), then `paynotify expect` it and watch the
sweeper of `paynotify serve` recover it (docs: "Develop without the provider").

Every key here is a throwaway test key made by `paynotify init`: replace them with your accounts'
real ones (Alipay's public key, your WeChat Pay keys, UnionPay's certificates) before going live, and
delete `keys/provider-side/`, which holds the providers' side of the test keys for signing test
notifications (see docs/testing.md). Notification URLs: `http://HOST:PORT/{{account}}/notify`.
"""


def init_project(
    directory: Path,
    *,
    force: bool = False,
    registry: Registry | None = None,
    emulator: str = DEFAULT_EMULATOR,
) -> list[tuple[str, StarterAccount]]:
    """Write the service into `directory`; refuses to overwrite a paynotify.toml unless `force`.
    The accounts' `base_url` point at `emulator` (`paynotify emulate`'s address).
    Returns (provider name, account) of each account written."""
    config = directory / "paynotify.toml"
    if config.exists() and not force:
        raise ConfigurationError(f"{str(config)!r} exists; give --force to overwrite it")
    found = registry or default_registry
    starters: list[tuple[str, StarterAccount]] = []
    for name in found.names():
        starter = _starter(found.get(name), emulator)
        if starter is not None:
            starters.append((name, starter))
    if not starters:
        raise ConfigurationError(
            "no first-party provider is installed (pip install paynotify-alipay paynotify-wechatpay)"
        )
    lines = [
        "# Made by `paynotify init`: throwaway test keys, see README.md. Secrets are files (`<field>_file`),",
        "# never inline. Subscribers are imported from this file's directory.",
        'store = "sqlite:///paynotify-events.db"   # relative to this file',
        'subscribers = ["subs:on_event"]',
    ]
    for provider, starter in starters:
        lines += ["", f"[accounts.{starter.account}]", f"provider = {_toml(provider)}"]
        lines += [f"{key} = {_toml(value)}" for key, value in starter.settings.items()]
    directory.mkdir(parents=True, exist_ok=True)
    for _, starter in starters:
        for name, content in starter.files.items():
            _write_secret(directory / name, content)
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "subs.py").write_text(_SUBS, encoding="utf-8")
    (directory / "README.md").write_text(
        _README.format(emulator=emulator, account=starters[0][1].account), encoding="utf-8"
    )
    return starters


def _starter(provider: Provider[Any], emulator: str) -> StarterAccount | None:
    # A third party's starter() written before the `emulator` parameter existed still works.
    if "emulator" in inspect.signature(provider.starter).parameters:
        return provider.starter(emulator=emulator)
    return provider.starter()


def create_store(config: Path) -> None:
    """Open (so create) the store `config` names, then close it: commands that only read a store
    (`events`, `expectations`, ...) refuse a SQLite file that is not there, and right after `init`
    they find an empty one."""
    import asyncio

    from paynotify import Notifier

    store = Notifier.from_config(config).store

    async def touch() -> None:
        await store.open()
        await store.close()

    asyncio.run(touch())


def _toml(value: str | Sequence[str]) -> str:
    # A JSON string is a TOML basic string (the same escapes), and a JSON list of them a TOML array.
    return json.dumps(value if isinstance(value, str) else list(value), ensure_ascii=False)


def _write_secret(path: Path, content: str) -> None:
    # Owner-only from the start: keys are never readable by others, not even for a moment.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content if content.endswith("\n") else content + "\n")
