"""`paynotify send ACCOUNT --order X --amount 1.00`: one test notification, signed as the provider
signs its own with the account's test keys (the provider-side keys `paynotify init` writes), POSTed
to a running service; prints what came back.

The provider makes the request (`Provider.sample_notification`): this module knows no provider.
Exit status: 0 the service acknowledged it (the provider's own ack); 1 it answered anything else
(refused, or asked for a resend); 2 a usage or configuration error (an unknown account, keys that
are not test keys); 3 the service could not be reached or did not answer in time.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import IO
from urllib.parse import urlsplit

import httpx

from paynotify import ConfigurationError, DemoRequest, Kind, Notifier, SampleNotification, UnknownAccount
from paynotify.cli._arguments import add_config_argument
from paynotify.cli._events_options import positive_float
from paynotify.cli._expectations import money

__all__ = ["add_send_parser", "run_send"]

DEFAULT_BASE = "http://127.0.0.1:8000"
"""Where `paynotify serve` listens by default."""
_SHOWN = 300
"""The most of a reply printed: enough for any provider's ack or error text."""


_MOST = Decimal("9999999999.99")
"""The largest amount sent: past any real order, within every provider's field."""


def cents(text: str) -> Decimal:
    """An amount in major units with at most two decimals (every provider counts in fen)."""
    amount = money(text)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(Decimal("0.01")):
        raise argparse.ArgumentTypeError(f"{text!r}: at most two decimals (fen), e.g. 1.00")
    if amount > _MOST:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {_MOST}")
    return amount


def add_send_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send", help="POST one test notification, signed with ACCOUNT's test keys, to a running service"
    )
    send.add_argument("account", metavar="ACCOUNT")
    send.add_argument("--kind", choices=[Kind.PAYMENT.value, Kind.REFUND.value], default=Kind.PAYMENT.value)
    send.add_argument("--order", required=True, metavar="ORDER_ID", help="the merchant's order id")
    send.add_argument(
        "--amount", type=cents, required=True, help="in yuan, e.g. 1.00: the total, or the refund's amount"
    )
    send.add_argument("--refund-id", metavar="ID", help="a refund's request id (default: ORDER_ID-refund)")
    send.add_argument(
        "--to",
        metavar="URL",
        help=f"the notify URL, or the service's base URL (then /ACCOUNT/notify is added; "
        f"default: {DEFAULT_BASE})",
    )
    send.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        help="seconds to wait for the reply (default: %(default)s)",
    )
    add_config_argument(send)


def run_send(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    if args.kind == Kind.PAYMENT.value and args.refund_id is not None:
        raise ConfigurationError("send: --refund-id is for --kind refund")
    if not args.config.is_file():
        raise ConfigurationError(f"no config file {str(args.config)!r}")
    # The store is never opened: send only reads the accounts.
    notifier = Notifier.from_config(args.config)
    try:
        account = notifier.accounts[args.account]
    except KeyError:
        raise UnknownAccount(
            f"no account {args.account!r} (configured: {', '.join(sorted(notifier.accounts))})"
        ) from None
    sample = SampleNotification(Kind(args.kind), args.order, args.amount, args.refund_id)
    request = account.provider.sample_notification(account, args.config.resolve().parent, sample)
    if request is None:
        raise ConfigurationError(f"provider {account.provider.name!r} cannot sign test notifications")
    url = target(args.to, args.account)
    from paynotify.publishers import shown_url  # never user info a URL may carry

    shown_at = shown_url(url)
    try:
        reply = _post(url, request, args.timeout)
    except httpx.HTTPError as exc:
        print(f"paynotify: {shown_at}: no answer: {type(exc).__name__}", file=sys.stderr)
        return 3
    ack = account.provider.ack()
    acknowledged = reply.status_code == ack.status and reply.content == ack.body
    text = reply.content.decode("utf-8", "replace")
    shown = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    verdict = "acknowledged" if acknowledged else "NOT acknowledged (refused, or asked for a resend)"
    out.write(f"{request.label} -> POST {shown_at}: {reply.status_code} {shown!r}: {verdict}\n")
    return 0 if acknowledged else 1


def target(given: str | None, account: str) -> str:
    """The URL to POST to: `given` when it names a notify path, else `/{account}/notify` under it."""
    url = (given or DEFAULT_BASE).rstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [IPv6 address
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"--to {given!r} is not an http(s) URL, e.g. {DEFAULT_BASE}")
    return url if parts.path.endswith("/notify") else f"{url}/{account}/notify"


def _post(url: str, request: DemoRequest, timeout: float) -> httpx.Response:
    # Every wait bounded: connecting, sending and reading the reply each within `timeout`.
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        return client.request(
            request.method,
            url + ("?" + request.query.decode("ascii") if request.query else ""),
            content=request.body or None,
            headers=dict(request.headers),
        )
