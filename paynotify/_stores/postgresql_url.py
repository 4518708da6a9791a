"""A PostgreSQL store URL split into what asyncpg gets and what paynotify keeps for itself
(`schema`, `pool_max`, `connect_timeout`, `timeout`; see `paynotify._stores.postgresql`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from paynotify._errors import ConfigurationError

__all__ = ["StoreUrl"]

N = TypeVar("N", int, float)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_OWN_OPTIONS = frozenset({"schema", "pool_max", "connect_timeout", "timeout"})
_DEFAULT_POOL_MAX = 10
_DEFAULT_CONNECT_TIMEOUT = 3.0
_DEFAULT_TIMEOUT = 3.0


class StoreUrl:
    """A store URL split into what asyncpg gets and what paynotify keeps for itself."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ConfigurationError("PostgreSQL store URL must start with postgresql:// or postgres://")
        kept: list[str] = []
        own: dict[str, str] = {}
        others: dict[str, str] = {}
        for item in parts.query.split("&") if parts.query else ():
            if not item:
                continue
            key, equals, value = item.partition("=")
            if not equals:
                raise ConfigurationError(f"PostgreSQL store URL parameter {unquote(key)!r} needs a value")
            key, value = unquote(key), unquote(value.replace("+", " "))
            if key in _OWN_OPTIONS:
                if key in own:
                    raise ConfigurationError(f"PostgreSQL store URL gives {key}= twice")
                own[key] = value
            else:
                others[key] = value
                kept.append(item)
        base = url.partition("?")[0].partition("#")[0]
        self.dsn = base + ("?" + "&".join(kept) if kept else "")
        self.application_name_given = "application_name" in others

        self.schema = own.get("schema", "public")
        if not _IDENTIFIER.fullmatch(self.schema):
            raise ConfigurationError(
                f"PostgreSQL store schema={self.schema!r} is not a plain identifier "
                "(letters, digits and _, not starting with a digit, at most 63 characters)"
            )
        self.pool_max = _positive(own, "pool_max", _DEFAULT_POOL_MAX, int)
        self.connect_timeout = _positive(own, "connect_timeout", _DEFAULT_CONNECT_TIMEOUT, float)
        self.timeout = _positive(own, "timeout", _DEFAULT_TIMEOUT, float)

        userinfo, at, hostspec = parts.netloc.rpartition("@")
        self.secrets = {
            s
            for raw in (userinfo.partition(":")[2] if at else "", others.get("password", ""))
            if raw
            for s in (raw, unquote(raw))
        }
        host = hostspec or others.get("host") or "localhost"
        database = unquote(parts.path.lstrip("/")) or others.get("dbname") or others.get("database") or ""
        self.where = f"{host}/{database}" if database else host

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _positive(own: Mapping[str, str], key: str, default: N, kind: type[N]) -> N:
    raw = own.get(key)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = kind(0)
    if value <= 0:
        raise ConfigurationError(f"PostgreSQL store {key}={raw!r} must be a positive number")
    return value
