"""`paynotify demo`: real signed notifications, over HTTP, through the real route and store.

Every installed provider that offers demo requests gets a throwaway account; each request is sent
once, the first again (a duplicate), then a forged one. Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import http.client
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from paynotify import ConfigurationError, DemoRequest, Kind, Notifier, PaymentResult
from paynotify.cli._serve import background_server
from paynotify.recovery import EmulatorTransport

__all__ = ["run_demo"]


@dataclass
class _Sent:
    account: str
    label: str
    role: str  # "first", "duplicate" or "forged"
    status: int
    reply: str


def run_demo(out: TextIO, db_path: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="paynotify-demo-") as tmp:
        db = db_path or Path(tmp) / "events.db"
        if not db.parent.is_dir():
            # Found now, not as a store error inside the server thread once it has started.
            raise ConfigurationError(f"--db {str(db)!r}: no directory {str(db.parent)!r} to create it in")
        if db.exists() and not db.is_file():
            raise ConfigurationError(f"--db {str(db)!r} is not a file")
        _probe(f"sqlite:///{db}")
        # A provider the demo must ask (a v2 refund's confirmation) is asked through its emulator.
        emulators = EmulatorTransport()
        notifier = Notifier(f"sqlite:///{db}", api_transport=emulators)
        delivered: list[PaymentResult] = []
        notifier.subscribe(delivered.append)

        plans: list[tuple[str, list[tuple[str, DemoRequest]]]] = []
        for name in notifier.registry.names():
            provider = notifier.registry.get(name)
            demo = provider.demo()
            if demo is None:
                continue
            account = f"demo-{name}"
            notifier.add_account(account, provider, **demo.settings)
            if demo.api is not None:
                emulators.mount(urlsplit(demo.settings["base_url"]).hostname or "", demo.api)
            requests = [("first", r) for r in demo.requests]
            notify = [r for r in demo.requests if r.channel == "notify"]
            if notify:
                requests.append(("duplicate", replace(notify[0], label=f"{notify[0].label} (duplicate)")))
            if demo.forged is not None:
                requests.append(("forged", demo.forged))
            plans.append((account, requests))
        if not plans:
            out.write("No provider with demo requests is installed (pip install paynotify-alipay).\n")
            return 1

        sent: list[_Sent] = []
        with background_server(notifier.asgi()) as port:
            out.write(
                f"paynotify demo: serving on http://127.0.0.1:{port}/{{account}}/{{channel}}, store {db}\n\n"
            )
            for account, requests in plans:
                for role, request in requests:
                    status, reply = _send(port, account, request)
                    sent.append(_Sent(account, request.label, role, status, reply))

        _table(
            out,
            "Requests sent and the replies the providers got",
            ["account", "request", "HTTP", "reply"],
            [[s.account, s.label, str(s.status), s.reply] for s in sent],
        )
        _table(
            out,
            f"PaymentResults delivered to subscribers ({len(delivered)})",
            [
                "provider",
                "kind",
                "status",
                "provider_status",
                "order_id",
                "amount",
                "refund",
                "paid/refunded at",
            ],
            [
                [
                    r.provider,
                    r.kind.value,
                    r.status.value,
                    r.provider_status,
                    r.order_id,
                    str(r.amount or ""),
                    str(r.refund_amount or ""),
                    str((r.refunded_at if r.kind is Kind.REFUND else r.paid_at) or ""),
                ]
                for r in delivered
            ],
        )
        return _verdict(out, sent, delivered)


def _probe(url: str) -> None:
    """Open and close the store once here: a file that is no SQLite database is a message now, not
    a server that fails to start in its thread."""
    store = Notifier(url).store

    async def touch() -> None:
        await store.open()
        await store.close()

    asyncio.run(touch())


def _verdict(out: TextIO, sent: list[_Sent], delivered: list[PaymentResult]) -> int:
    """Check, rather than claim, what the demo is meant to show."""
    first_notify_reply = {}
    for s in sent:
        if s.role == "first" and s.account not in first_notify_reply and s.reply != "(HTML page)":
            first_notify_reply[s.account] = (s.status, s.reply)
    problems = [
        f"{s.account}: forged request was acknowledged"
        for s in sent
        if s.role == "forged" and (s.status, s.reply) == first_notify_reply.get(s.account)
    ]
    problems += [
        f"{s.account}: duplicate was not acknowledged like the original"
        for s in sent
        if s.role == "duplicate" and (s.status, s.reply) != first_notify_reply.get(s.account)
    ]
    if len({r.event_id for r in delivered}) != len(delivered):
        problems.append("an event was delivered twice")
    for problem in problems:
        out.write(f"FAILED: {problem}\n")
    if problems:
        return 1
    out.write("Forged requests were refused; duplicates were acknowledged without a second delivery.\n")
    return 0


def _send(port: int, account: str, request: DemoRequest) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        path = f"/{account}/{request.channel}"
        if request.query:
            path += "?" + request.query.decode("ascii")
        conn.request(request.method, path, body=request.body or None, headers=dict(request.headers))
        response = conn.getresponse()
        body = response.read()
        location = response.getheader("location")
    finally:
        conn.close()
    text = f"redirect to {location}" if location else body.decode("utf-8", "replace")
    if "<html" in text:
        text = "(HTML page)"
    # CDATA wrappers only add width; the reply codes are what the reader wants to see.
    text = text.replace("<![CDATA[", "").replace("]]>", "")
    return response.status, text if len(text) <= 90 else text[:87] + "..."


def _table(out: TextIO, title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    out.write(f"{title}\n")
    for i, row in enumerate([header, *rows]):
        out.write("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if i == 0:
            out.write("  " + "  ".join("-" * w for w in widths) + "\n")
    out.write("\n")
