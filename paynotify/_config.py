"""Accounts from a TOML file. Secrets never sit in it: `<field>_file` reads a file, `<field>_env` an
environment variable, for any settings field; a secret field (a `SecretStr` of the provider's
settings model) given inline is refused. Subscribers are imported with the file's directory on
`sys.path`, so `subs:on_event` is `subs.py` next to the config.

    store = "sqlite:///events.db"            # relative paths are relative to this file
    delivery = "inline"                      # or "queued" (then: max_attempts, backoff_seconds, ...)
    subscribers = ["myapp.payments:on_event", {target = "myapp.crm:sync", kind = "refund"}]

    [accounts.shop]
    provider = "alipay"
    app_id = "2021004100000000"
    alipay_public_key_file = "keys/alipay_public_key.pem"

    [accounts.shop-wechat]
    provider = "wechatpay-v2"
    appid = "wx8888888888888888"
    mch_id = "1900000109"
    api_key_env = "SHOP_WECHAT_API_KEY"

    [[webhooks]]                             # signed HTTP webhooks (docs/webhooks.md)
    name = "orders"
    url = "https://orders.internal/paynotify"
    secret_env = "ORDERS_WEBHOOK_SECRET"     # or a list, during a rotation; or secret_file
    kind = "payment"
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from pydantic import SecretStr

from paynotify._errors import ConfigurationError
from paynotify._options import Options
from paynotify._registry import Registry
from paynotify._subscribers import for_account

__all__ = ["Config", "SubscriberSpec", "load_config", "read_toml", "resolve_settings"]

_OPTIONS = tuple(f.name for f in fields(Options))
HOOKS = ("checks", "on_rejected", "on_unhandled")
"""Top-level lists of "module:function" hooks: `Notifier.check`, `.on_rejected`, `.on_unhandled`."""
_TOP_LEVEL = {"store", "subscribers", "accounts", "webhooks", *HOOKS, *_OPTIONS}


@dataclass(frozen=True, slots=True)
class SubscriberSpec:
    target: Callable[..., Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    """`kind`, `status`, `name`, as `Notifier.subscribe` takes them."""


@dataclass(frozen=True, slots=True)
class Config:
    """What a config file says, every secret read and every subscriber imported."""

    store: str | None
    options: Options
    accounts: dict[str, tuple[str, dict[str, Any]]]
    """Each account's provider name and settings."""
    subscribers: list[SubscriberSpec]
    hooks: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)
    """`checks`, `on_rejected`, `on_unhandled`: the hooks each names, imported; an account's own
    (in its `[accounts.NAME]` table) scoped to it, after the file's top-level ones."""

    def install_hooks(self, notifier: Any) -> None:
        """Register the hooks on `notifier` (`Notifier.check`, `.on_rejected`, `.on_unhandled`)."""
        for name, hooks in self.hooks.items():
            register = getattr(notifier, "check" if name == "checks" else name)
            for hook in hooks:
                register(hook)


def load_config(path: Path, registry: Registry) -> Config:
    """Read `path` (TOML); `registry` says which settings each account's provider has."""
    data = read_toml(path)
    try:
        options = Options(**{k: data[k] for k in _OPTIONS if k in data})
    except ConfigurationError as exc:
        raise ConfigurationError(f"config {str(path)!r}: {exc}") from None
    store = _store_url(data.get("store"), path.parent)
    hooks = {name: _hooks(name, data.get(name, []), path) for name in HOOKS}
    accounts = data.get("accounts")
    for account, table in accounts.items() if isinstance(accounts, dict) else ():
        for name in HOOKS if isinstance(table, dict) else ():
            # Popped before the provider's settings see the table: they are not settings.
            own = _hooks(f"[accounts.{account}] {name}", table.pop(name, []), path)
            hooks[name] += [for_account(hook, account) for hook in own]
    return Config(
        store=store,
        options=options,
        accounts=_account_specs(registry, data, path),
        subscribers=[_subscriber(entry, path) for entry in data.get("subscribers", [])]
        + [_webhook(entry, path, store) for entry in data.get("webhooks", [])],
        hooks=hooks,
    )


def _hooks(name: str, entries: object, path: Path) -> list[Callable[..., Any]]:
    """The hooks `entries` names: one "module:function", or a list of them."""
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list):
        raise ConfigurationError(f'config {str(path)!r}: {name} takes "module:function" or a list of them')
    return [_imported(entry, path, what=f"{name} hook") for entry in entries]


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigurationError(f"cannot read config {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config {str(path)!r} is not valid TOML: {exc}") from None
    unknown = set(data) - _TOP_LEVEL
    if unknown:
        raise ConfigurationError(
            f"config {str(path)!r}: unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_LEVEL)}"
        )
    return data


def _account_specs(
    registry: Registry, data: Mapping[str, Any], path: Path
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each account's provider name and settings, with `_file` / `_env` secrets read."""
    accounts = data.get("accounts", {})
    if not isinstance(accounts, dict) or not accounts:
        raise ConfigurationError(f"config {str(path)!r} has no [accounts.NAME] tables")
    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, table in accounts.items():
        if not isinstance(table, dict) or not isinstance(table.get("provider"), str):
            raise ConfigurationError(f'config {str(path)!r}: [accounts.{name}] needs provider = "..."')
        settings = dict(table)
        provider = settings.pop("provider")
        model_fields = registry.get(provider).settings_model.model_fields
        _refuse_inline_secrets(name, settings, model_fields, path)
        specs[name] = (provider, resolve_settings(name, settings, model_fields, path.parent))
    return specs


def _refuse_inline_secrets(
    account: str, settings: Mapping[str, Any], model_fields: Mapping[str, Any], path: Path
) -> None:
    # A config file is copied, committed and pasted into tickets: a key written in it leaks.
    for key in settings:
        if key in model_fields and _is_secret(model_fields[key].annotation):
            raise ConfigurationError(
                f"config {str(path)!r}: [accounts.{account}] gives the secret {key} inline; "
                f"use {key}_file (a path to a file holding it) or {key}_env (an environment variable)"
            )


def _is_secret(annotation: object) -> bool:
    """True for SecretStr, and for SecretStr inside a union or a list (`SecretStr | None`)."""
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def _store_url(url: object, base: Path) -> str | None:
    if url is None:
        return None
    if not isinstance(url, str):
        raise ConfigurationError('store must be a URL string, e.g. "sqlite:///events.db"')
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(base / url[len(prefix) :])
    return url


def resolve_settings(
    account: str, settings: Mapping[str, Any], model_fields: Mapping[str, Any], base: Path
) -> dict[str, Any]:
    """Replace `x_file` and `x_env` keys by the value of field `x`, read from a file or the environment."""
    resolved: dict[str, Any] = {}
    for key, value in settings.items():
        field, _, source = key.rpartition("_")
        if key in model_fields or source not in ("file", "env") or field not in model_fields:
            resolved[key] = value
            continue
        if field in settings or field in resolved:
            raise ConfigurationError(f"account {account!r}: give {field} or {key}, not both")
        read = _read_file(account, key, base) if source == "file" else _read_env(account, key)
        resolved[field] = [read(v) for v in value] if isinstance(value, list) else read(value)
    return resolved


def _read_file(account: str, key: str, base: Path) -> Callable[[object], str]:
    def read(value: object) -> str:
        if not isinstance(value, str):
            raise ConfigurationError(f"account {account!r}: {key} must be a path")
        path = base / value
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"account {account!r}: {key}: cannot read {str(path)!r}: {exc.strerror} "
                f"(to try paynotify with throwaway test keys: paynotify init DIR)"
            ) from None

    return read


def _read_env(account: str, key: str) -> Callable[[object], str]:
    def read(value: object) -> str:
        if not isinstance(value, str):
            raise ConfigurationError(f"account {account!r}: {key} must name an environment variable")
        found = os.environ.get(value)
        if not found:
            raise ConfigurationError(f"account {account!r}: {key}: environment variable {value} is not set")
        return found

    return read


def _subscriber(entry: object, path: Path) -> SubscriberSpec:
    options: dict[str, Any] = {}
    if isinstance(entry, dict):
        options = {k: v for k, v in entry.items() if k in ("kind", "status", "name")}
        entry = entry.get("target")
    return SubscriberSpec(_imported(entry, path, what="subscriber"), options)


def _imported(entry: object, path: Path, *, what: str) -> Callable[..., Any]:
    """The callable a "module:function" string names, imported relative to the config's directory."""
    if not isinstance(entry, str) or ":" not in entry:
        raise ConfigurationError(f'config {str(path)!r}: a {what} is "module:function", got {entry!r}')
    module_name, _, attr = entry.partition(":")
    _importable_from(path.parent)
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"config {str(path)!r}: cannot import {what} {entry!r}: {exc}") from None
    if not callable(target):
        raise ConfigurationError(f"config {str(path)!r}: {what} {entry!r} is not callable")
    return cast("Callable[..., Any]", target)


def _webhook(entry: object, path: Path, store: str | None) -> SubscriberSpec:
    """A `[[webhooks]]` table as a subscriber (paynotify.publishers.WebhookPublisher); its secret
    comes from `secret_env` or `secret_file` (a list of them during a rotation), never inline."""
    if not isinstance(entry, dict):
        raise ConfigurationError(f"config {str(path)!r}: [[webhooks]] entries are tables")
    table = dict(entry)
    what = f"webhook {table.get('name', '?')!r}"
    if "secret" in table:
        raise ConfigurationError(
            f"config {str(path)!r}: {what} gives its secret inline; use secret_env or secret_file"
        )
    secret_fields = {"secret": None}
    table = resolve_settings(what, table, secret_fields, path.parent)
    outbox = table.get("outbox")
    if isinstance(outbox, str):
        table["outbox"] = _store_url(outbox, path.parent)
    # Imported by name, as subscribers are: the core does not import the publishers' package.
    publishers = importlib.import_module("paynotify.publishers._webhook")
    try:
        publisher = publishers.WebhookPublisher.from_table(table, store_url=store)
    except (ConfigurationError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"config {str(path)!r}: {exc}") from None
    return SubscriberSpec(publisher)


def _importable_from(directory: Path) -> None:
    """Put the config's directory first on `sys.path`: the file names its subscribers relative to
    itself, wherever `paynotify serve` is started from."""
    where = str(directory.resolve())
    if where not in sys.path:
        sys.path.insert(0, where)
