"""`paynotify events`' options: the argument types, the filters, and the parser of every action."""

from __future__ import annotations

import argparse
import math
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from paynotify import RETAINED, EventState

__all__ = [
    "ALL",
    "add_events_parser",
    "add_where",
    "days",
    "filtered",
    "moment",
    "port",
    "positive_float",
    "positive_int",
    "store_url",
]

ALL = 10_000_000
"""A limit that means every event (the CLI reads whole selections)."""


_MAX_COUNT = 10**9
"""The largest count an option takes: far past any real need, and within every store's integers."""
_MAX_DAYS = 100_000.0
"""About 270 years: the oldest bound purge can compute without leaving the calendar."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= _MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be 1 or more and at most {_MAX_COUNT}, not {text}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be 0 to 65535, not {text}")
    return value


def positive_float(text: str, *, most: float = float(_MAX_COUNT)) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    # `not value > 0` also catches nan, which compares false with everything.
    if not value > 0 or not math.isfinite(value) or value > most:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {most:g}, not {text}")
    return value


def days(text: str) -> float:
    return positive_float(text, most=_MAX_DAYS)


def store_url(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty store URL names no store, e.g. sqlite:///events.db")
    return text


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"(\d{1,9})([smhdw])")


def moment(text: str) -> float:
    """`30m`, `1h`, `2d`, `1w` ago, or an ISO date or date and time as Unix seconds (UTC unless it
    carries an offset); refused when it lies outside the calendar (years 1 to 9999, in UTC)."""
    ago = _AGO.fullmatch(text.strip())
    if ago:
        value = time.time() - int(ago[1]) * _UNITS[ago[2]]
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither a time ago (30m, 1h, 2d, 1w) nor an ISO date or time, "
                "e.g. 2026-01-31 or 2026-01-31T08:00+08:00"
            ) from None
        try:
            value = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        except (OverflowError, ValueError):
            value = math.inf
    try:
        # Every time shown or compared later is a UTC datetime: one that cannot exist is refused now.
        datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        raise argparse.ArgumentTypeError(f"{text!r} is outside years 1 to 9999 in UTC") from None
    return value


def add_where(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """--config and --store; on each action too (`suppress`), so they may follow the action."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help="TOML config: its store, and its subscribers for retries",
    )
    parser.add_argument(
        "--store",
        type=store_url,
        default=default,
        help="store URL, e.g. postgresql://host/db (retries then only requeue); a SQLite file must exist",
    )


def add_filters(parser: argparse.ArgumentParser, *, purge: bool = False) -> None:
    """The filters; purge has a --state and an --until (of the last update) of its own."""
    parser.add_argument("--account")
    parser.add_argument("--provider", help="provider name, e.g. alipay")
    parser.add_argument("--order", help="order id (out_trade_no)")
    if not purge:
        parser.add_argument(
            "--search",
            metavar="TEXT",
            help="order id prefix (any case), transaction id, refund id or event-id prefix (6+ hex)",
        )
        parser.add_argument("--state", action="append", choices=[s.value for s in EventState])
    parser.add_argument(
        "--since",
        type=moment,
        help="created at or after this time: 30m, 1h, 2d, 1w ago or ISO (UTC unless an offset is given)",
    )
    if not purge:
        parser.add_argument(
            "--until", type=moment, help="created before this time: 30m, 1h, 2d, 1w ago or ISO"
        )


def filtered(args: argparse.Namespace) -> bool:
    names = ("account", "provider", "order", "search", "state", "since", "until")
    return any(getattr(args, name, None) is not None for name in names)


def add_events_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = commands.add_parser("events", help="list, show, retry, replay, audit or purge recorded events")
    add_where(events)
    actions = events.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="events, newest first")
    add_filters(listing)
    listing.add_argument("--dead", action="store_true", help="only dead-lettered events")
    listing.add_argument(
        "--limit", type=positive_int, default=50, help="at most this many (default: %(default)s)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line, no header")

    show = actions.add_parser("show", help="one event with its PaymentResult and its attempts (JSON)")
    show.add_argument("event_id")
    show.add_argument("--json", action="store_true", help="accepted for symmetry: show always prints JSON")

    for name, text in (
        ("retry", "deliver again to the subscribers that have not succeeded"),
        ("replay", "deliver again to every subscriber, even for completed events"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "event_ids", nargs="*", metavar="EVENT_ID", help="event ids; - reads them from stdin"
        )
        add_filters(action)
        action.add_argument("--json", action="store_true", help="print a JSON summary object")
        action.add_argument("--dead", action="store_true", help="every dead-lettered event")
        action.add_argument("--released", action="store_true", help="every event left by a failed delivery")
        if name == "replay":
            action.add_argument(
                "--rejected",
                action="store_true",
                help="every event an account check refused (re-checked with the current settings)",
            )

    audit = actions.add_parser("audit", help="who retried, replayed or requeued what, newest first")
    audit.add_argument("--since", type=moment, help="at or after this time: 30m, 1h, 2d, 1w ago or ISO")
    audit.add_argument(
        "--limit", type=positive_int, default=50, help="at most this many (default: %(default)s)"
    )
    audit.add_argument("--json", action="store_true", help="one JSON object per line, no header")

    purge = actions.add_parser("purge", help="delete old settled (or other) events")
    purge.add_argument("--older-than", type=days, metavar="DAYS", help="default: the retention_days setting")
    purge.add_argument(
        "--state",
        action="append",
        choices=[s.value for s in EventState],
        help=f"default: {', '.join(s.value for s in RETAINED)}; others are not delivered yet and ask first",
    )
    purge.add_argument(
        "--until",
        type=moment,
        help="only events last updated before this time: 30m, 1h, 2d, 1w ago or ISO (UTC unless an offset); "
        "with --older-than, the earlier of the two",
    )
    add_filters(purge, purge=True)
    purge.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    purge.add_argument("--yes", action="store_true", help="purge undelivered events without asking")
    purge.add_argument("--json", action="store_true", help="print a JSON summary object")
    for action in actions.choices.values():
        add_where(action, suppress=True)
