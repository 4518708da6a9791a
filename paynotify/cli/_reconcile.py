"""`paynotify reconcile ACCOUNT --date YYYY-MM-DD [--json] [--heal]`: the provider's bill of a Beijing
day against the recorded events.

Exit status: 0 no discrepancy left open; 1 discrepancies (listed); 2 a usage or configuration error
(an unknown account, one without bills, a bad date); 3 the provider could not be reached or had no
bill, or another process is reconciling that day (try later); 4 the bill was refused (malformed:
its line is named; or its signed answer did not verify).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime, timedelta
from typing import IO

from paynotify import BEIJING, BillFormatError, ProviderApiError, VerificationError
from paynotify.cli._arguments import add_config_argument, config_notifier

__all__ = ["add_reconcile_parser", "run_reconcile"]


def beijing_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-01-31") from None


def add_reconcile_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser("reconcile", help="match the provider's daily bill against the events")
    yesterday = datetime.now(BEIJING).date() - timedelta(days=1)
    command.add_argument("account", metavar="ACCOUNT")
    command.add_argument("--date", type=beijing_day, default=yesterday, metavar="YYYY-MM-DD",
                         help="the bill's day in Beijing (default: yesterday, %(default)s)")  # fmt: skip
    command.add_argument("--heal", action="store_true", help="query each line never recorded; deliver it")
    command.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_config_argument(command)


def run_reconcile(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    from paynotify.reconciliation import ReconciliationInProgress, ReconciliationReport

    out = out or sys.stdout
    notifier = config_notifier(args.config, "reconcile")

    async def main() -> ReconciliationReport:
        await notifier.open(dispatcher=False, sweeper=False)
        try:
            return await notifier.reconcile(args.account, args.date, heal=args.heal)
        finally:
            await notifier.aclose()

    try:
        report = asyncio.run(main())
    except (BillFormatError, VerificationError) as exc:
        print(f"paynotify: bill refused: {exc} (nothing was healed)", file=sys.stderr)
        return 4
    except (ProviderApiError, ReconciliationInProgress) as exc:
        print(f"paynotify: {exc}", file=sys.stderr)
        return 3
    if args.json:
        out.write(report.to_json() + "\n")
    else:
        counts = ", ".join(f"{kind} {n}" for kind, n in report.counts.items())
        out.write(f"{report.account} {report.day}: {report.lines} lines, {report.matched} matched; {counts};"
                  f" healed {report.healed}\n")  # fmt: skip
        for item in report.discrepancies:
            where = f"line {item.line}" if item.line is not None else "not on the bill"
            healed = f" healed: {item.healed}" if item.healed else ""
            bill = f"{item.bill_amount or '-'} {item.bill_status or '-'}"
            recorded = f"{item.recorded_amount or '-'} {item.recorded_status or '-'}"
            out.write(f"  {item.kind.value} {where}: {item.record_kind} {item.order_id} event"
                      f" {item.event_id or '-'} bill {bill}, recorded {recorded}{healed}"
                      f" {item.note}\n")  # fmt: skip
    return 1 if any(report.open_counts().values()) else 0
