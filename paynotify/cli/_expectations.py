"""`paynotify expectations list [--account A] [--state open|settled|expired] [--json]`: what the
sweeper awaits, what it settled and what expired, read from the config's store.

    $ paynotify expectations list --state open
    shop  order-1  -  88.88 CNY  open  asked 2  next 2026-01-31T08:13:00+00:00  until ...

Exit status: 0 listed (none is not an error, a message says so); 2 a usage or configuration
error (the store keeps no expectations).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from paynotify._errors import ConfigurationError
from paynotify._notifier import Notifier
from paynotify._stores.expectations import Expectation, ExpectationState

__all__ = ["add_expectations_parser", "run_expectations"]


def add_expectations_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("expectations", help="list the payments and refunds the sweeper awaits")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="expectations, newest first")
    listing.add_argument("--account", help="only this account's")
    listing.add_argument(
        "--state", choices=[s.value for s in ExpectationState], action="append", help="repeatable"
    )
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default: %(default)s)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument(
        "--config", type=Path, default=Path("paynotify.toml"), help="TOML config (default: %(default)s)"
    )


def run_expectations(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    if args.limit < 1:
        raise ConfigurationError("--limit must be at least 1")
    notifier = Notifier.from_config(args.config)
    states = None if not args.state else [ExpectationState(s) for s in args.state]

    async def main() -> list[Expectation]:
        try:
            expectations = notifier.store.expectations
        except NotImplementedError:
            raise ConfigurationError(f"{type(notifier.store).__name__} keeps no expectations") from None
        await notifier.store.open()
        try:
            return await expectations.find(account=args.account, states=states, limit=args.limit)
        finally:
            await notifier.store.close()

    found = asyncio.run(main())
    if not found:
        print("no expectations match", file=sys.stderr)
        return 0
    for record in found:
        out.write((json.dumps(_public(record), ensure_ascii=False) if args.json else _line(record)) + "\n")
    return 0


def _public(record: Expectation) -> dict[str, object]:
    fields = asdict(record)
    fields.pop("lease_token")  # a lease's token is the sweeper's own, of no use to a reader
    fields["state"] = record.state.value
    return fields


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _line(record: Expectation) -> str:
    pending = record.state is ExpectationState.OPEN
    when = f"next {_iso(record.next_due)}" if pending else f"closed {_iso(record.updated_at)}"
    return "  ".join(
        [
            record.account,
            record.order_id,
            record.refund_id or "-",
            f"{record.amount} {record.currency}",
            record.state.value if pending else f"{record.state.value} ({record.outcome or '-'})",
            f"asked {record.attempts}",
            when,
            f"until {_iso(record.until)}",
        ]
    )
