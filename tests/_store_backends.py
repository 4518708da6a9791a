"""Every store backend, each isolated per test, for the one conformance suite.

PostgreSQL and Redis run when reachable (the URLs below, or PAYNOTIFY_TEST_POSTGRES_URL /
PAYNOTIFY_TEST_REDIS_URL); otherwise their tests skip with a message saying how to enable them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from paynotify import Store, open_store

POSTGRES_URL = os.environ.get("PAYNOTIFY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PAYNOTIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BACKENDS = ["memory", "sqlite", "postgresql", "redis"]
ENABLE_HINT = "start it (bash .ci/run does) or point {var} at a server; see docs/several-instances.md"


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=0.5):
            return True
    except OSError:
        return False


def require(backend: str) -> str:
    """The base URL of a server backend, or skip the test saying how to enable it."""
    url, var = (POSTGRES_URL, "PAYNOTIFY_TEST_POSTGRES_URL")
    if backend == "redis":
        url, var = (REDIS_URL, "PAYNOTIFY_TEST_REDIS_URL")
    if not reachable(url):
        message = f"{backend} is not reachable at {url}: " + ENABLE_HINT.format(var=var)
        if os.environ.get("PAYNOTIFY_REQUIRE_SERVICES"):
            pytest.fail(message)  # CI starts the services: a skip there would hide a broken setup
        pytest.skip(message)
    return url


def isolated_url(backend: str, tmp_path: Path) -> str:
    """A store URL no other test shares: a fresh file, PostgreSQL schema or Redis key prefix."""
    tag = f"pn_test_{secrets.token_hex(4)}"
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    base = require(backend)
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}schema={tag}" if backend == "postgresql" else f"{base}{joiner}prefix={tag}:"


async def drop(backend: str, url: str) -> None:
    if backend == "postgresql":
        import asyncpg

        base, _, schema = url.rpartition("schema=")
        conn = await asyncpg.connect(base.rstrip("?&"))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
    elif backend == "redis":
        import redis.asyncio as aioredis

        base, _, prefix = url.rpartition("prefix=")
        client = aioredis.Redis.from_url(base.rstrip("?&"))
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@asynccontextmanager
async def backend_stores(backend: str, tmp_path: Path) -> AsyncIterator[Callable[[], Store]]:
    """Yield a factory of stores over the same data (for memory: the same store every time)."""
    url = isolated_url(backend, tmp_path)
    opened: list[Store] = []
    shared = open_store(url) if backend == "memory" else None

    def make() -> Store:
        store = shared or open_store(url)
        opened.append(store)
        return store

    try:
        yield make
    finally:
        await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
        await drop(backend, url)
