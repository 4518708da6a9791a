"""The account table: which provider and settings answer for each name in the URL.

Reads are a dict lookup; every change builds and validates new `Account`s first and then swaps
them in with one assignment, so a request in progress finishes with the settings it started with.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from paynotify._errors import ConfigurationError
from paynotify._provider import Account, Provider
from paynotify._registry import Registry

__all__ = ["AccountSpec", "Accounts", "ProviderRef", "check_account_name"]

log = logging.getLogger("paynotify")

_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

ProviderRef = str | type[Provider[Any]] | Provider[Any]
AccountSpec = tuple[ProviderRef, Mapping[str, Any]]


def check_account_name(name: object) -> str:
    """The name, if it can be a URL path segment; `ConfigurationError` otherwise."""
    if not isinstance(name, str) or not _ACCOUNT_NAME.fullmatch(name):
        raise ConfigurationError(
            f"account name {name!r} must be 1-64 characters of letters, digits, '_', '.', '-' "
            "(it is a segment of the notification URL)"
        )
    return name


class Accounts:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._accounts: dict[str, Account[Any]] = {}

    def get(self, name: str) -> Account[Any] | None:
        return self._accounts.get(name)

    def view(self) -> Mapping[str, Account[Any]]:
        """A read-only view; after `replace` ask for a new one."""
        return MappingProxyType(self._accounts)

    def add(self, name: str, provider: ProviderRef, settings: Mapping[str, Any]) -> Account[Any]:
        check_account_name(name)
        if name in self._accounts:
            raise ConfigurationError(f"account {name!r} is already added")
        account = self._accounts[name] = self.build(name, provider, settings)
        return account

    def update(self, name: str, provider: ProviderRef | None, settings: Mapping[str, Any]) -> Account[Any]:
        current = self._accounts.get(name)
        if current is None:
            raise ConfigurationError(f"no account {name!r} to update; add it with add_account")
        account = self._accounts[name] = self.build(name, provider or current.provider, settings)
        log.info("account %r (%s) updated", name, account.provider.name)
        return account

    def replace(self, specs: Mapping[str, AccountSpec]) -> None:
        """All of `specs` validated first, then swapped in at once; nothing changes on an error."""
        built = {
            check_account_name(name): self.build(name, provider, settings)
            for name, (provider, settings) in specs.items()
        }
        self._accounts = built

    def build(self, name: str, provider: ProviderRef, settings: Mapping[str, Any]) -> Account[Any]:
        if isinstance(provider, str):
            instance = self.registry.get(provider)
        elif isinstance(provider, type):
            instance = provider()
        else:
            instance = provider
        try:
            validated = instance.settings_model.model_validate(dict(settings))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(settings)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigurationError(f"account {name!r} ({instance.name}): {problems}") from None
        return Account(name, instance, validated)
