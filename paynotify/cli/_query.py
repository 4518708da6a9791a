"""`paynotify query ACCOUNT ORDER_ID`: ask the provider, deliver what is new, print what it said.

Exit status: 0 the provider answered (found or not) and what was new is delivered or queued;
1 it answered but the delivery did not complete (a subscriber or the store failed: the event waits
for its retry); 2 a usage or configuration error (an unknown account, one that cannot query);
3 the provider could not be reached or answered with an error of its own; 4 the answer did not
verify (never believed, nothing delivered).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import IO, Any

from paynotify import BEIJING, Outcome, ProviderApiError, QueryAnswer, VerificationError
from paynotify.cli._arguments import add_config_argument, config_notifier

__all__ = ["add_query_parser", "run_query"]

_UNFINISHED = frozenset({Outcome.DELIVERY_FAILED, Outcome.STORE_UNAVAILABLE})


def beijing_moment(text: str) -> datetime:
    """An ISO date and time; Beijing time unless it carries an offset (providers' clocks are)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date and time, e.g. 2026-01-31T08:00:00 or 2026-01-31T00:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=BEIJING)


def add_query_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    query = commands.add_parser(
        "query", help="ask the provider about an order (or a refund) and deliver what is new"
    )
    query.add_argument("account", metavar="ACCOUNT")
    query.add_argument("order_id", metavar="ORDER_ID", help="the merchant's order id (out_trade_no)")
    query.add_argument("--refund", metavar="ID", help="ask about this refund request of the order instead")
    query.add_argument(
        "--at",
        type=beijing_moment,
        metavar="ISO",
        help="when the order (or refund) was made, for a provider whose query needs it (UnionPay); "
        "Beijing time unless an offset is given",
    )
    query.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    add_config_argument(query)


def run_query(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    notifier = config_notifier(args.config, "query")

    async def main() -> QueryAnswer:
        # Its own subscribers deliver in this process (inline); queued, a worker delivers.
        await notifier.open(dispatcher=False)
        try:
            return await notifier.query(args.account, args.order_id, refund_id=args.refund, at=args.at)
        finally:
            await notifier.aclose()

    try:
        answer = asyncio.run(main())
    except VerificationError as exc:
        refused = f"paynotify: refused: {exc} (the answer is not believed; nothing was delivered)"
        print(refused, file=sys.stderr)
        return 4
    except ProviderApiError as exc:
        print(f"paynotify: {exc}", file=sys.stderr)
        return 3
    text = json.dumps(_as_dict(args, answer), ensure_ascii=False) if args.json else _line(args, answer)
    out.write(text + "\n")
    return 1 if answer.outcome in _UNFINISHED else 0


def _as_dict(args: argparse.Namespace, answer: QueryAnswer) -> dict[str, Any]:
    result = answer.result
    return {
        "account": args.account,
        "order_id": args.order_id,
        "refund_id": args.refund,
        "found": answer.found,
        "outcome": answer.outcome.value if answer.outcome else None,
        "result": result.model_dump(mode="json") if result is not None else None,
    }


def _line(args: argparse.Namespace, answer: QueryAnswer) -> str:
    asked = f"refund {args.refund} of order {args.order_id}" if args.refund else f"order {args.order_id}"
    result = answer.result
    if result is None:
        what = "refund" if args.refund else "order"
        return f"{args.account} {asked}: the provider knows no such {what} (yet)"
    amount = result.refund_amount if result.refund_amount is not None else result.amount
    money = f" {amount} {result.currency}" if amount is not None else ""
    outcome = answer.outcome.value if answer.outcome else "-"
    return (
        f"{args.account} {asked}: {result.kind.value} {result.status.value} "
        f"({result.provider_status}){money}, event {result.event_id}: {outcome}"
    )
