"""Arguments several commands share, spelled once, and the store they open.

Global options (`--config`, `--store`, `--log-format`, `--log-level`) may come before the command
(`paynotify --config paynotify.toml events list`) as well as after it, anywhere on the line: before
the command they are moved to the end of the line, where every command that takes them reads them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from paynotify import ConfigurationError

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = [
    "GLOBAL_OPTIONS",
    "add_config_argument",
    "config_notifier",
    "hoist_global_options",
    "require_existing",
]

DEFAULT_CONFIG = Path("paynotify.toml")

GLOBAL_OPTIONS = ("--config", "--store", "--log-format", "--log-level")
"""Options that take one value and may precede the command."""


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """`--config PATH`: the TOML file the command builds its Notifier from."""
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML config (default: %(default)s)"
    )


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """`argv` with the global options given before the command moved after it (to the end).

    Only the options before the first word that is not an option move; the rest is left as typed,
    so an option's value that happens to look like a command name is never taken for one."""
    before: list[str] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        word = argv[i]
        name = word.partition("=")[0]
        if name not in GLOBAL_OPTIONS:
            return list(argv)  # --version, --help or a typo: argparse says what it makes of it
        takes_next = "=" not in word and i + 1 < len(argv)
        before += argv[i : i + 2] if takes_next else [word]
        i += 2 if takes_next else 1
    return [*argv[i:], *before] if i < len(argv) else list(argv)


def config_notifier(config: Path, command: str) -> Notifier:
    """The Notifier of `config`, for a command that reads or adds to an existing store: a config
    that is not there, or names a SQLite file that is not there, is refused (never created)."""
    from paynotify import Notifier

    if not config.is_file():
        raise ConfigurationError(f"no config file {str(config)!r}")
    notifier = Notifier.from_config(config)
    require_existing(notifier, command)
    return notifier


def require_existing(notifier: Notifier, command: str) -> None:
    """Refuse a SQLite store whose file is not there: opening it would create an empty one, and a
    typo would then report that the store holds nothing."""
    from paynotify import SQLiteStore

    path = getattr(notifier.store, "path", None)
    if isinstance(notifier.store, SQLiteStore) and path != ":memory:" and not Path(str(path)).is_file():
        raise ConfigurationError(
            f"no SQLite store at {str(path)!r} ({command} never creates one; "
            "serve, worker, demo and init do): check the path"
        )
