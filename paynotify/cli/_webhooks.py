"""`paynotify webhooks`: the `[[webhooks]]` endpoints of a config file.

    paynotify webhooks --config paynotify.toml list             endpoints and their outbox counts
    paynotify webhooks --config paynotify.toml test orders      POST one signed test event, say what came back
    paynotify webhooks --config paynotify.toml retry orders     dead-lettered events of `orders`, due now

`retry NAME EVENT_ID...` sends those events again (any state of the outbox: a resend, which the
receiver de-duplicates on webhook-id). The running workers pick requeued events up within a second.
Circuit and disabled state live in each serving process (the console shows them and resets them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paynotify import ConfigurationError, Notifier, PaymentResult

if TYPE_CHECKING:
    from paynotify.publishers import WebhookPublisher

__all__ = ["TEST_ACCOUNT", "add_webhooks_parser", "run_webhooks", "test_result"]

TEST_ACCOUNT = "paynotify-test"
"""The account of `webhooks test` events: a receiver should acknowledge and otherwise ignore it."""


def add_webhooks_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhooks = commands.add_parser("webhooks", help="list, test or retry the [[webhooks]] endpoints")
    webhooks.add_argument("--config", type=Path, help="TOML config with [[webhooks]] (required)")
    actions = webhooks.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="endpoints, their delivery and outbox counts")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    test = actions.add_parser("test", help="POST one signed test event (account paynotify-test) to NAME")
    test.add_argument("name")
    retry = actions.add_parser("retry", help="make NAME's dead-lettered (or the named) events due now")
    retry.add_argument("name")
    retry.add_argument("event_ids", nargs="*", metavar="EVENT_ID", help="resend these, whatever their state")
    for action in actions.choices.values():
        # Accepted after the action too, as the README's one-liners write it.
        action.add_argument(
            "--config", type=Path, default=argparse.SUPPRESS, help="TOML config with [[webhooks]]"
        )


def run_webhooks(args: argparse.Namespace) -> int:
    if args.config is None:
        raise ConfigurationError("webhooks: give --config FILE")
    if not args.config.is_file():
        raise ConfigurationError(f"no config file {str(args.config)!r}")
    notifier = Notifier.from_config(args.config)
    hooks = endpoints(notifier)
    if not hooks and args.action == "list":
        # Nothing to list is a quiet success (cron); naming an endpoint that is not there is not.
        print(f"no [[webhooks]] in {str(args.config)!r}: nothing to list", file=sys.stderr)
        return 0
    if not hooks:
        raise ConfigurationError(f"config {str(args.config)!r} has no [[webhooks]]")
    if args.action == "list":
        return asyncio.run(_list(hooks, as_json=args.json))
    hook = _named(hooks, args.name)
    if args.action == "test":
        return asyncio.run(_test(hook))
    return asyncio.run(_retry(hook, args.event_ids))


def endpoints(notifier: Notifier) -> list[WebhookPublisher]:
    from paynotify.publishers import webhook_publishers

    return webhook_publishers(notifier)


def _named(hooks: list[WebhookPublisher], name: str) -> WebhookPublisher:
    for hook in hooks:
        if hook.endpoint == name:
            return hook
    raise ConfigurationError(f"no webhook named {name!r}; configured: {', '.join(h.endpoint for h in hooks)}")


async def _list(hooks: list[WebhookPublisher], *, as_json: bool) -> int:
    if not as_json:
        print("NAME\tDELIVERY\tURL\tPENDING\tIN_FLIGHT\tDEAD\tDONE")
    for hook in hooks:
        counts: dict[str, int] = {}
        if hook.outbox is not None:
            await hook.outbox.open()
            counts = {state.value: n for state, n in (await hook.outbox.count()).items()}
        row: dict[str, Any] = {
            "name": hook.endpoint,
            "delivery": hook.delivery,
            "url": _shown_url(hook.url),
            **{k: counts.get(k, 0) for k in ("pending", "in_flight", "dead", "done")},
        }
        print(json.dumps(row) if as_json else "\t".join(str(v) for v in row.values()))
        await hook.aclose()
    return 0


def test_result() -> PaymentResult:
    """A test event: account `paynotify-test`, status pending, amount 0, a fresh event id."""
    return PaymentResult(
        provider="paynotify",
        account=TEST_ACCOUNT,
        kind="payment",
        status="pending",
        provider_status="TEST",
        order_id="paynotify-webhook-test",
        amount=Decimal("0.00"),
        event_id=f"test-{secrets.token_hex(12)}",
    )


async def _test(hook: WebhookPublisher) -> int:
    try:
        attempt = await hook.send(test_result())
    finally:
        await hook.aclose()
    status = attempt.status_code if attempt.status_code is not None else "-"
    print(f"{hook.endpoint}\t{status}\t{attempt.seconds * 1000:.0f} ms\t{attempt.error or 'ok'}")
    return 0 if attempt.ok else 1


async def _retry(hook: WebhookPublisher, event_ids: list[str]) -> int:
    try:
        count = await hook.retry(event_ids or None)
    finally:
        await hook.aclose()
    what = "named events" if event_ids else "dead-lettered events"
    print(f"{hook.endpoint}: {count} {what} due now", file=sys.stdout)
    return 0


def _shown_url(url: str) -> str:
    from paynotify.publishers import shown_url  # loaded with the publishers, when used

    return shown_url(url)
