"""What the PostgreSQL store needs to know of asyncpg: which of its exceptions are the store's
errors, which mean the connection (not the statement) failed, and how its pool is used."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

__all__ = ["CONNECTION_ERRORS", "DB_ERRORS", "OPEN_ERRORS", "drop_outcome", "keep_session"]

# What the driver raises: server errors, client/interface errors (a dropped connection is an
# InterfaceError), protocol errors, and socket errors (OSError covers refused connections and
# TimeoutError).
DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)

# Opening also meets ValueError: asyncpg refusing something in the URL (a bad port, say).
OPEN_ERRORS: tuple[type[BaseException], ...] = (*DB_ERRORS, ValueError)

# A broken or refused connection, as opposed to an error in a statement.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # including ConnectionDoesNotExistError
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,  # e.g. a message from a server that is going away
    OSError,
)


def drop_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def keep_session(conn: Any) -> None:
    """The pool's default reset (`RESET ALL; UNLISTEN *; ...`) would cost a second round trip after
    every statement. This store changes no session state, and the pool itself still rolls back a
    transaction left open."""
