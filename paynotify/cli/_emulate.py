"""`paynotify emulate --config paynotify.toml`: the providers of a service, played locally.

Every account whose provider has an emulator (`Provider.emulator`, made from the provider's
`testing` module) and whose `base_url` is on this address (`http://HOST:PORT/ACCOUNT...`, what
`paynotify init` writes) is served by one ASGI app: the account's API requests under
`/ACCOUNT/...`, answered and signed with the provider's side of the throwaway keys init wrote.

A developer creates orders at the emulator, and has their notification sent or dropped:

    POST /_emulator/ACCOUNT/orders   {"order_id": "order-1", "amount": "88.88", "notify": false}
    -> 201 {"account": ..., "order_id": ..., "amount": "88.88", "at": "2026-...+08:00",
            "notify_url": "http://127.0.0.1:8000/ACCOUNT/notify", "notified": false, "status": null}

The order is paid at the emulator (a query finds it) at `at` (UnionPay's query names it:
`paynotify expect --at`); `notify: true` (the default) POSTs its signed notification to the
account's notify URL on `--notify-to` (the address of `paynotify serve`) or to `notify_url`, and
`status` is the HTTP status the service answered first. Unless the order says `"resend": false`,
a notification the service does not acknowledge (down, an error, not the provider's success reply)
is sent again on the provider's resend schedule (`LocalEmulator.resend`), in real time, or faster by
`--resend-scale` (0.01: Alipay's 25 h in 15 min); `resending` says one is pending.
`POST /_emulator/ACCOUNT/refunds` with `{"order_id", "refund_id", "amount", "notify", "resend"}`
refunds a paid order the same way (404 for an order the emulator does not hold). `GET /_emulator`
lists the emulated accounts.

Exit status: 2 for a usage or configuration error (no config, no account to emulate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from paynotify import BEIJING, ConfigurationError, LocalEmulator, Notifier
from paynotify.cli._arguments import add_config_argument

if TYPE_CHECKING:
    import httpx

    from paynotify.testing import ResendSchedule, Sending

__all__ = ["DEFAULT_EMULATOR", "EmulatorApp", "add_emulate_parser", "emulated_accounts", "run_emulate", "url"]

log = logging.getLogger("paynotify.emulate")

DEFAULT_EMULATOR = "http://127.0.0.1:8001"
"""Where `paynotify emulate` listens unless told otherwise (what `paynotify init` points at)."""
_DEFAULT_SERVICE = "http://127.0.0.1:8000"
_NOTIFY_TIMEOUT = 10.0
_MAX_BODY = 16 * 1024

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
SendAsgi = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def url(text: str) -> str:
    """An http(s) address, host and port, no path: `http://127.0.0.1:8001`."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an address like http://127.0.0.1:8001 (no path)")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the port is out of range") from None
    return text.strip().rstrip("/")


def add_emulate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from paynotify.cli._events_options import port

    emulate = commands.add_parser(
        "emulate",
        help="play the providers of a config's accounts locally (develop without the provider)",
        description="Serve every account's provider emulator (its base_url on this port) and create "
        'orders with POST /_emulator/ACCOUNT/orders {"order_id": "o-1", "amount": "88.88", "notify": false}: '
        "paid at the emulator, its notification sent to --notify-to or dropped. "
        "Docs: develop-without-the-provider.md.",
    )
    add_config_argument(emulate)
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    emulate.add_argument("--port", type=port, default=8001, help="port to listen on (default: %(default)s)")
    emulate.add_argument(
        "--notify-to",
        type=url,
        default=_DEFAULT_SERVICE,
        metavar="URL",
        help="where `paynotify serve` listens: notifications go to URL/ACCOUNT/notify (default: %(default)s)",
    )
    emulate.add_argument(
        "--resend-scale",
        type=_scale,
        default=1.0,
        metavar="FACTOR",
        help="multiply the providers' resend waits by FACTOR (0.01: a day in ~15 min; default: %(default)s)",
    )


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


@dataclass(frozen=True, slots=True)
class Emulated:
    account: str
    provider: str
    emulator: LocalEmulator
    notify_url: str


def emulated_accounts(
    notifier: Notifier, directory: Path, port: int, notify_to: str
) -> tuple[dict[str, Emulated], list[str]]:
    """The accounts this emulator plays (by name), and why each other one is not."""
    played: dict[str, Emulated] = {}
    skipped: list[str] = []
    for name, account in sorted(notifier.accounts.items()):
        emulator = account.provider.emulator(account, directory)
        if emulator is None:
            skipped.append(f"{name}: provider {account.provider.name} has no emulator for it")
            continue
        parts = urlsplit(emulator.base_url)
        on_port = parts.port or (443 if parts.scheme == "https" else 80)
        segment = parts.path.strip("/").split("/", 1)[0]
        if on_port != port or segment != name:
            skipped.append(f"{name}: base_url {emulator.base_url} is not http://HOST:{port}/{name}...")
            continue
        played[name] = Emulated(name, account.provider.name, emulator, f"{notify_to}/{name}/notify")
    return played, skipped


def run_emulate(args: argparse.Namespace) -> int:
    import uvicorn

    from paynotify.cli._serve import configure_logging

    configure_logging("text", "info")
    if not args.config.is_file():
        raise ConfigurationError(f"no config file {str(args.config)!r}")
    notifier = Notifier.from_config(args.config)
    played, skipped = emulated_accounts(notifier, args.config.resolve().parent, args.port, args.notify_to)
    for reason in skipped:
        print(f"paynotify emulate: not emulated: {reason}", file=sys.stderr)
    if not played:
        raise ConfigurationError(
            f"no account of {str(args.config)!r} can be emulated on port {args.port}: an account needs "
            f"a base_url http://HOST:{args.port}/ACCOUNT... and its query keys (paynotify init writes both)"
        )
    for item in played.values():
        log.info("emulating %s (%s) at %s, notifying %s", item.account, item.provider,
                 item.emulator.base_url, item.notify_url)  # fmt: skip
    app = EmulatorApp(played, resend_scale=args.resend_scale)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", lifespan="off")
    return 0


class EmulatorApp:
    """One ASGI app for every emulated account: `/ACCOUNT/...` to the account's emulator (which
    sees the rest of the path), `/_emulator/...` to create orders."""

    def __init__(self, accounts: Mapping[str, Emulated], *, resend_scale: float = 1.0) -> None:
        self.accounts = dict(accounts)
        self.resend_scale = resend_scale
        self._resending: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: SendAsgi) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        segments = path.strip("/").split("/")
        if segments[0] == "_emulator":
            status, answer = await self._control(scope, receive, segments[1:])
            await _json_reply(send, status, answer)
            return
        item = self.accounts.get(segments[0])
        if item is None:
            await _json_reply(send, 404, {"error": f"no emulated account {segments[0]!r}"})
            return
        prefix = "/" + segments[0]
        raw_path: bytes = scope.get("raw_path") or path.encode()
        inner = dict(scope)
        inner["path"] = path[len(prefix) :] or "/"
        inner["raw_path"] = raw_path[len(prefix.encode()) :] or b"/"
        inner["root_path"] = scope.get("root_path", "") + prefix
        await item.emulator.app(inner, receive, send)

    async def _control(
        self, scope: Scope, receive: Receive, segments: list[str]
    ) -> tuple[int, dict[str, Any]]:
        if segments in ([], [""]) and scope["method"] == "GET":
            return 200, {
                "accounts": [
                    {
                        "account": i.account,
                        "provider": i.provider,
                        "base_url": i.emulator.base_url,
                        "notify_url": i.notify_url,
                    }
                    for i in self.accounts.values()
                ]
            }
        if len(segments) != 2 or segments[1] not in ("orders", "refunds"):
            return 404, {"error": "POST /_emulator/ACCOUNT/orders or /refunds, or GET /_emulator"}
        item = self.accounts.get(segments[0])
        if item is None:
            return 404, {
                "error": f"no emulated account {segments[0]!r} (emulated: {', '.join(self.accounts)})"
            }
        refunds = segments[1] == "refunds"
        if scope["method"] != "POST":
            return 405, {"error": f"POST a JSON {'refund' if refunds else 'order'}: {_FIELDS[refunds]}"}
        if refunds and item.emulator.refund is None:
            return 404, {"error": f"the emulator of {item.account} takes no refunds"}
        body = await _body(receive)
        if body is None:
            return 413, {"error": f"a request is at most {_MAX_BODY} bytes"}
        try:
            order = _order(body, refund=refunds)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        return await self._create(item, order)

    async def _create(self, item: Emulated, order: _Order) -> tuple[int, dict[str, Any]]:
        at = datetime.now(BEIJING).replace(microsecond=0)
        what = f"order {order.order_id!r}"
        if order.refund_id is None:
            notification = item.emulator.pay(order.order_id, order.amount, at)
        elif item.emulator.refund is None:
            return 404, {"error": f"the emulator of {item.account} takes no refunds"}
        else:
            what = f"refund {order.refund_id!r} of order {order.order_id!r}"
            try:
                notification = item.emulator.refund(order.order_id, order.refund_id, order.amount, at)
            except KeyError:
                return 404, {"error": f"the emulator holds no order {order.order_id!r} of {item.account}"}
        notify_url = order.notify_url or item.notify_url
        answer: dict[str, Any] = {
            "account": item.account, "order_id": order.order_id, "amount": f"{order.amount:.2f}",
            "at": at.isoformat(), "notify_url": notify_url, "notified": order.notify, "status": None,
        }  # fmt: skip
        if order.refund_id is not None:
            answer["refund_id"] = order.refund_id
        if not order.notify:
            log.info("%s of %s done at the emulator; its notification dropped", what, item.account)
            return 201, answer
        import httpx

        from paynotify.testing import NotificationCourier, ResendSchedule

        schedule = item.emulator.resend or ResendSchedule(item.provider, (), lambda status, body: True)
        schedule = schedule.scaled(self.resend_scale) if order.resend else schedule.once()
        client = httpx.AsyncClient(timeout=_NOTIFY_TIMEOUT)
        sending = NotificationCourier(client, schedule, timeout=_NOTIFY_TIMEOUT).send(
            notify_url, notification
        )
        task = asyncio.get_running_loop().create_task(_close_when_ended(client, sending, schedule))
        self._resending.add(task)
        task.add_done_callback(self._resending.discard)
        async with asyncio.timeout(_NOTIFY_TIMEOUT * 2):
            await sending.first.wait()
        answer["status"] = sending.statuses[0] if sending.statuses else None
        answer["resending"] = not sending.ended.is_set()
        if answer["status"] is None:
            answer["error"] = f"no reply within {_NOTIFY_TIMEOUT:g} s"
        pending = ", resending on the provider's schedule" if answer["resending"] else ""
        log.info("%s of %s done at the emulator; notified %s: HTTP %s%s", what, item.account, notify_url,
                 answer["status"], pending)  # fmt: skip
        return 201, answer


async def _close_when_ended(client: httpx.AsyncClient, sending: Sending, schedule: ResendSchedule) -> None:
    """Wait (bounded by the schedule) for a notification to be acknowledged or given up, then close
    its client; log how it ended."""
    bound = sum(schedule.delays) + _NOTIFY_TIMEOUT * (len(schedule.delays) + 2)
    try:
        await sending.wait(bound)
        if len(sending.attempts) > 1:
            log.info("notification to %s after %d attempts: %s", sending.url, len(sending.attempts),
                     "acknowledged" if sending.acknowledged else "given up")  # fmt: skip
    finally:
        await client.aclose()


@dataclass(frozen=True, slots=True)
class _Order:
    order_id: str
    amount: Decimal
    notify: bool
    notify_url: str | None
    refund_id: str | None = None
    resend: bool = True


_FIELDS = {False: "{order_id, amount, notify}", True: "{order_id, refund_id, amount, notify}"}


def _order(body: bytes, *, refund: bool = False) -> _Order:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"the body is not JSON: {_FIELDS[refund]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the body must be a JSON object: {_FIELDS[refund]}")
    known = {"order_id", "amount", "notify", "notify_url", "resend"} | ({"refund_id"} if refund else set())
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}: give {', '.join(sorted(known))}")
    ids = ("order_id", "refund_id") if refund else ("order_id",)
    for name in ids:
        value = data.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > 64:
            raise ValueError(f"{name} must be a non-empty string of at most 64 characters")
    order_id = data["order_id"]
    raw_amount = data.get("amount")
    if isinstance(raw_amount, bool) or not isinstance(raw_amount, str | int | float):
        raise ValueError("amount must be a number or a string, in major units: 88.88")
    try:
        amount = Decimal(str(raw_amount))
    except InvalidOperation:
        raise ValueError(f"amount {raw_amount!r} is not a number") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"amount {raw_amount!r} must be positive, with at most two decimals")
    notify = data.get("notify", True)
    notify_url = data.get("notify_url")
    resend = data.get("resend", True)
    if not isinstance(notify, bool):
        raise ValueError("notify must be true or false")
    if not isinstance(resend, bool):
        raise ValueError("resend must be true or false")
    if notify_url is not None and (
        not isinstance(notify_url, str) or urlsplit(notify_url).scheme not in ("http", "https")
    ):
        raise ValueError("notify_url must be an http(s) URL")
    return _Order(order_id, amount, notify, notify_url, data["refund_id"] if refund else None, resend)


async def _body(receive: Receive) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > _MAX_BODY:
            return None
        if not message.get("more_body"):
            return body


async def _json_reply(send: SendAsgi, status: int, answer: Mapping[str, Any]) -> None:
    body = json.dumps(answer, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
