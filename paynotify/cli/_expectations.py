"""`paynotify expect ACCOUNT ORDER --amount 88.88 --until 24h`: await a payment (or, with
`--refund`, a refund); the sweeper of `paynotify serve` or `worker` asks the provider if its
notification does not come.

`paynotify expectations list [--account A] [--state open|settled|expired] [--json]`: what the
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
import re
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import IO

from paynotify import ConfigurationError, Expectation, ExpectationState
from paynotify.cli._arguments import add_config_argument, config_notifier
from paynotify.cli._events_options import positive_int
from paynotify.cli._query import beijing_moment

__all__ = ["add_expect_parser", "add_expectations_parser", "run_expect", "run_expectations"]

_SPAN = re.compile(r"(\d+)([mhdw])")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def span_or_moment(text: str) -> timedelta | datetime:
    """`30m`, `24h`, `2d`, `1w` from now, or an ISO date and time (UTC unless it carries an offset)."""
    found = _SPAN.fullmatch(text.strip())
    if found:
        return timedelta(seconds=int(found.group(1)) * _UNIT[found.group(2)])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a time from now (30m, 24h, 2d, 1w) nor an ISO date and time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def money(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount, e.g. 88.88") from None
    if not amount.is_finite() or amount <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the amount must be positive")
    return amount


def add_expect_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    expect = commands.add_parser("expect", help="await a payment (or refund); the sweeper asks if it is late")
    expect.add_argument("account", metavar="ACCOUNT")
    expect.add_argument("order_id", metavar="ORDER_ID")
    expect.add_argument("--amount", type=money, required=True, help="in major units, e.g. 88.88")
    expect.add_argument("--currency", default="CNY", help="(default: %(default)s)")
    expect.add_argument("--refund", metavar="ID", help="await this refund request of the order instead")
    expect.add_argument(
        "--until", type=span_or_moment, required=True, help="24h, 2d from now, or an ISO date and time"
    )
    expect.add_argument(
        "--at",
        type=beijing_moment,
        help="when the order was paid, ISO, Beijing time unless it has an offset (UnionPay's txnTime)",
    )
    add_config_argument(expect)


def run_expect(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    notifier = config_notifier(args.config, "expect")

    async def main() -> Expectation:
        await notifier.store.open()
        try:
            return await notifier.expect(
                args.account, args.order_id, amount=args.amount, currency=args.currency,
                refund_id=args.refund, until=args.until, at=getattr(args, "at", None),
            )  # fmt: skip
        finally:
            await notifier.store.close()

    out.write(_line(asyncio.run(main())) + "\n")
    return 0


def add_expectations_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("expectations", help="list the payments and refunds the sweeper awaits")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="expectations, newest first")
    listing.add_argument("--account", help="only this account's")
    listing.add_argument(
        "--state", choices=[s.value for s in ExpectationState], action="append", help="repeatable"
    )
    listing.add_argument(
        "--limit", type=positive_int, default=100, help="at most this many (default: %(default)s)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    add_config_argument(listing)


def run_expectations(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    notifier = config_notifier(args.config, "expectations")
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
