"""Store URLs: which backend a URL names, imported (with its driver) only when a URL asks for it."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from paynotify._errors import ConfigurationError
from paynotify._stores.base import Store

__all__ = ["open_store", "store_schemes"]

StoreFactory = Callable[[str], Store]


def _backend(module: str, cls: str, extra: str | None = None) -> StoreFactory:
    """A factory that imports a backend (and its driver) only when a URL asks for it."""

    def factory(url: str) -> Store:
        try:
            backend: StoreFactory = getattr(importlib.import_module(module), cls)
        except ImportError as exc:
            if extra is None:
                raise
            raise ConfigurationError(
                f"store URL {url.partition('://')[0]}://... needs the {exc.name} package: "
                f"pip install 'paynotify[{extra}]'"
            ) from None
        return backend(url)

    return factory


_SCHEMES: dict[str, StoreFactory] = {
    "memory": _backend("paynotify._stores.memory", "MemoryStore"),
    "sqlite": _backend("paynotify._stores.sqlite", "SQLiteStore"),
    "postgresql": _backend("paynotify._stores.postgresql", "PostgresStore", "postgresql"),
    "postgres": _backend("paynotify._stores.postgresql", "PostgresStore", "postgresql"),
    "redis": _backend("paynotify._stores.redis", "RedisStore", "redis"),
    "rediss": _backend("paynotify._stores.redis", "RedisStore", "redis"),
}


def store_schemes() -> dict[str, StoreFactory]:
    """URL schemes understood by `open_store`; add one to plug in a store backend."""
    return _SCHEMES


def open_store(url: str) -> Store:
    """A store from a URL: `memory://`, `sqlite:///relative.db`, `sqlite:////absolute.db`,
    `postgresql://user@host/db`, `redis://host:6379/0`."""
    scheme, sep, _ = url.partition("://")
    factory = _SCHEMES.get(scheme) if sep else None
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise ConfigurationError(f"unknown store URL {url!r}; use one of: {known}")
    return factory(url)
