"""Where a webhook endpoint's outbox lives beside a Notifier's store, and how an endpoint's URL is
shown (the CLI, the console, logs): scheme, host and path, never the user info or the query."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from paynotify import ConfigurationError

__all__ = ["outbox_url", "shown_url"]


def outbox_url(store_url: str, endpoint: str) -> str:
    """The outbox of endpoint `endpoint` beside a Notifier's store: the same backend, its own space
    (`events.db` -> `events.webhook-NAME.db`; PostgreSQL schema `<schema>_webhook_NAME`; Redis
    prefix `<prefix>webhook:NAME:`; memory: a store of its own)."""
    scheme, _, rest = store_url.partition("://")
    if scheme == "memory":
        return "memory://"
    if scheme == "sqlite":
        path = rest[1:]
        stem, dot, suffix = path.rpartition(".")
        if not dot or "/" in suffix:
            return f"sqlite:///{path}.webhook-{endpoint}"
        return f"sqlite:///{stem}.webhook-{endpoint}.{suffix}"
    parts = urlsplit(store_url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme in ("postgresql", "postgres"):
        query["schema"] = f"{query.get('schema', 'public')}_webhook_{endpoint.replace('-', '_')}"
    elif scheme in ("redis", "rediss"):
        query["prefix"] = f"{query.get('prefix', 'paynotify:')}webhook:{endpoint}:"
    else:
        raise ConfigurationError(f"webhook {endpoint!r}: give outbox = URL (no default beside {scheme}://)")
    return urlunsplit(parts._replace(query=urlencode(query)))


def shown_url(url: str) -> str:
    """Scheme, host and path: never the user info or the query, which may hold credentials."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
