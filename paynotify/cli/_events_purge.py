"""`paynotify events purge`: delete old settled (or, asked twice, other) events."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import IO, Any

from paynotify import RETAINED, ConfigurationError, EventState, Notifier
from paynotify.cli._events_options import ALL as _ALL
from paynotify.cli._events_show import time_text as _time

__all__ = ["purge"]

_UNDELIVERED = frozenset(EventState) - frozenset(RETAINED)


_PURGE_FILTERS = {"account": "account", "provider": "provider", "order": "order_id", "since": "created_after"}
"""purge's filter options, and what `EventLog.purge` and `find` call them."""


async def purge(notifier: Notifier, args: argparse.Namespace, out: IO[str]) -> int:
    states = [EventState(s) for s in args.state] if args.state else list(RETAINED)
    days = notifier.options.retention_days if args.older_than is None else args.older_than
    before = time.time() - days * 86400
    what = f"{', '.join(s.value for s in states)} events older than {days:g} days"
    if args.until is not None and (args.older_than is None or args.until < before):
        # --until alone replaces the retention default; with --older-than the earlier bound wins.
        before = args.until
        when = datetime.fromtimestamp(before, UTC)
        what = f"{', '.join(s.value for s in states)} events last updated before {when:%Y-%m-%dT%H:%M:%SZ}"
    given = {option: getattr(args, option) for option in _PURGE_FILTERS if getattr(args, option) is not None}
    matching: dict[str, Any] = {_PURGE_FILTERS[option]: value for option, value in given.items()}
    shown = {option: _time(value) if option == "since" else value for option, value in given.items()}
    described = ", ".join(f"created since {v}" if o == "since" else f"{o} {v}" for o, v in shown.items())
    with_filters = f" with {described}" if shown else ""
    what += with_filters
    summary = {"states": [s.value for s in states], "before": _time(before), **shown}
    undelivered = ", ".join(sorted(s.value for s in _UNDELIVERED.intersection(states)))
    if args.dry_run:
        # The same filters as the purge, the last update's bound applied here (find has none).
        found = await notifier.store.find(states=states, limit=_ALL, **matching)
        doomed = sum(1 for event in found if event.updated_at < before)
        text = f"would purge {doomed} {what}"
        out.write((json.dumps({"would_purge": doomed, **summary}) if args.json else text) + "\n")
        return 0
    if undelivered and not args.yes:
        if not sys.stdin.isatty():
            raise ConfigurationError(
                f"purging {undelivered} events deletes payments never delivered: add --yes"
            )
        print(
            f"purge {what}? {undelivered} were never delivered. [y/N] ", end="", file=sys.stderr, flush=True
        )
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            out.write(json.dumps({"purged": 0, **summary}) + "\n" if args.json else "nothing purged\n")
            return 1
    purged = await notifier.store.purge(before=before, states=states, **matching)
    text = f"purged {purged} events{with_filters}"
    out.write((json.dumps({"purged": purged, **summary}) if args.json else text) + "\n")
    return 0
