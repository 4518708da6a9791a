"""`paynotify events audit`, the attempts `events show` lists, and the audit entries the CLI's own
retries and replays write, as operator `cli:<user>` (the user running the command)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from typing import IO

from paynotify import Attempt, AuditEntry, Notifier
from paynotify.cli._events_show import time_text

__all__ = ["attempts_of", "audit", "cli_operator", "record_action", "selection_of"]


def cli_operator() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no USER/LOGNAME (a bare container)
        user = "unknown"
    return f"cli:{user}"


def _attempt(a: Attempt) -> dict[str, object]:
    return {
        "started_at": time_text(a.started_at),
        "outcome": a.outcome,
        "error": a.error,
        "duration_ms": round(a.duration * 1000, 1),
        "instance": a.instance,
        "operator": a.operator,
    }


async def attempts_of(notifier: Notifier, event_id: str) -> list[dict[str, object]]:
    """The event's history, newest first, for `events show`."""
    try:
        return [_attempt(a) for a in await notifier.store.history.attempts(event_id)]
    except NotImplementedError:
        return []


async def record_action(
    notifier: Notifier, action: str, ids: Sequence[str], done: Sequence[str], *, selection: str | None
) -> None:
    """One audit entry for a retry or replay the CLI made (a selection's: `bulk-<action>`), and a
    row in the history of each event it covered. A store that cannot take it is reported, not fatal:
    the deliveries happened."""
    if not ids:
        return
    kind = action if selection is None and len(ids) == 1 else f"bulk-{action}"
    outcome = "ok" if len(done) == len(ids) else f"{len(done)} of {len(ids)} {action} done"
    if len(ids) == 1 and not done:
        outcome = "not taken"
    entry = AuditEntry.new(cli_operator(), kind, ids, outcome=outcome, selection=selection)
    try:
        await notifier.store.history.audit(entry, events=ids)
    except Exception as exc:
        print(f"could not record this {action} in the audit log: {exc}", file=sys.stderr)


def selection_of(args: argparse.Namespace) -> str | None:
    """The selection options given (None: only event ids), times as the moment they meant: `--since
    1h` is written as the UTC time it resolved to, so the entry still says what was selected."""
    flags = [f"--{name}" for name in ("dead", "released", "rejected") if getattr(args, name, False)]
    for name in ("account", "provider", "order", "search"):
        value = getattr(args, name, None)
        if value is not None:
            flags.append(f"--{name} {value}")
    for state in getattr(args, "state", None) or ():
        flags.append(f"--state {state}")
    for name in ("since", "until"):
        value = getattr(args, name, None)
        if value is not None:
            flags.append(f"--{name} {time_text(value)}")
    return " ".join(flags) or None


async def audit(notifier: Notifier, args: argparse.Namespace, out: IO[str]) -> int:
    """`paynotify events audit`: the operators' actions, newest first."""
    entries = await notifier.store.history.audit_log(since=args.since, limit=args.limit)
    if args.json:
        for e in entries:
            record = {"id": e.id, "at": time_text(e.at), "operator": e.operator, "action": e.action,
                      "count": e.count, "outcome": e.outcome, "selection": e.selection,
                      "event_ids": list(e.event_ids)}  # fmt: skip
            out.write(json.dumps(record) + "\n")
        return 0
    if not entries:
        out.write("no operator actions recorded" + (" since then" if args.since is not None else "") + "\n")
        return 0
    out.write("  ".join(["AT".ljust(20), "OPERATOR".ljust(16), "ACTION".ljust(13), "COUNT", "OUTCOME",
                         "EVENTS / SELECTION"]) + "\n")  # fmt: skip
    for e in entries:
        what = e.selection or " ".join(e.event_ids[:3]) + (" ..." if e.count > 3 else "")
        fields = [time_text(e.at), e.operator.ljust(16), e.action.ljust(13), f"{e.count:>5}", e.outcome, what]
        out.write("  ".join(fields) + "\n")
    return 0
