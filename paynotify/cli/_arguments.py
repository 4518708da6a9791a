"""Arguments several commands share, spelled once."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_config_argument"]

DEFAULT_CONFIG = Path("paynotify.toml")


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """`--config PATH`: the TOML file the command builds its Notifier from."""
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML config (default: %(default)s)"
    )
