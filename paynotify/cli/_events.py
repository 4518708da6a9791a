"""`paynotify events`: look at, retry, replay and purge recorded events in any store.

With `--config`, retry and replay deliver in this process, to the subscribers the file names; with
only `--store`, they put the events back in the queue for the dispatchers (queued delivery).

Filters: account, order and state go to the store's `find`; provider and the --since/--until
window are applied here, on what `find` returns. purge gives its filters to the store's `purge`.
`-` among the event ids reads more from stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from paynotify._errors import ConfigurationError, PaynotifyError
from paynotify._notifier import Notifier
from paynotify._stores.base import RETAINED, EventState, StoredEvent
from paynotify.cli._arguments import require_existing

__all__ = ["add_events_parser", "run_events"]

T = TypeVar("T")

_UNDELIVERED = frozenset(EventState) - frozenset(RETAINED)


_MAX_COUNT = 10**9
"""The largest count an option takes: far past any real need, and within every store's integers."""
_MAX_DAYS = 100_000.0
"""About 270 years: the oldest bound purge can compute without leaving the calendar."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= _MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be 1 or more and at most {_MAX_COUNT}, not {text}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be 0 to 65535, not {text}")
    return value


def positive_float(text: str, *, most: float = float(_MAX_COUNT)) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    # `not value > 0` also catches nan, which compares false with everything.
    if not value > 0 or not math.isfinite(value) or value > most:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {most:g}, not {text}")
    return value


def days(text: str) -> float:
    return positive_float(text, most=_MAX_DAYS)


def store_url(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty store URL names no store, e.g. sqlite:///events.db")
    return text


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"(\d{1,9})([smhdw])")


def moment(text: str) -> float:
    """`30m`, `1h`, `2d`, `1w` ago, or an ISO date or date and time as Unix seconds (UTC unless it
    carries an offset); refused when it lies outside the calendar (years 1 to 9999, in UTC)."""
    ago = _AGO.fullmatch(text.strip())
    if ago:
        value = time.time() - int(ago[1]) * _UNITS[ago[2]]
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither a time ago (30m, 1h, 2d, 1w) nor an ISO date or time, "
                "e.g. 2026-01-31 or 2026-01-31T08:00+08:00"
            ) from None
        try:
            value = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        except (OverflowError, ValueError):
            value = math.inf
    try:
        # Every time shown or compared later is a UTC datetime: one that cannot exist is refused now.
        datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        raise argparse.ArgumentTypeError(f"{text!r} is outside years 1 to 9999 in UTC") from None
    return value


def add_where(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """--config and --store; on each action too (`suppress`), so they may follow the action."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help="TOML config: its store, and its subscribers for retries",
    )
    parser.add_argument(
        "--store",
        type=store_url,
        default=default,
        help="store URL, e.g. postgresql://host/db (retries then only requeue); a SQLite file must exist",
    )


def _add_filters(parser: argparse.ArgumentParser, *, purge: bool = False) -> None:
    """The filters; purge has a --state and an --until (of the last update) of its own."""
    parser.add_argument("--account")
    parser.add_argument("--provider", help="provider name, e.g. alipay")
    parser.add_argument("--order", help="order id (out_trade_no)")
    if not purge:
        parser.add_argument(
            "--search",
            metavar="TEXT",
            help="order id prefix (any case), transaction id, refund id or event-id prefix (6+ hex)",
        )
        parser.add_argument("--state", action="append", choices=[s.value for s in EventState])
    parser.add_argument(
        "--since",
        type=moment,
        help="created at or after this time: 30m, 1h, 2d, 1w ago or ISO (UTC unless an offset is given)",
    )
    if not purge:
        parser.add_argument(
            "--until", type=moment, help="created before this time: 30m, 1h, 2d, 1w ago or ISO"
        )


def _filtered(args: argparse.Namespace) -> bool:
    names = ("account", "provider", "order", "search", "state", "since", "until")
    return any(getattr(args, name, None) is not None for name in names)


async def _select(notifier: Notifier, args: argparse.Namespace, limit: int) -> list[StoredEvent]:
    """The events the filters of `args` select, newest first, at most `limit`."""
    states = [EventState(s) for s in args.state] if getattr(args, "state", None) else None
    if getattr(args, "dead", False):
        states = [EventState.DEAD]
    here = args.provider is not None or args.since is not None or args.until is not None
    found = await notifier.store.find(
        account=args.account,
        order_id=args.order,
        states=states,
        limit=_ALL if here else limit,
        search=getattr(args, "search", None),
    )
    if here:
        found = [
            event
            for event in found
            if (args.provider is None or event.provider == args.provider)
            and (args.since is None or event.created_at >= args.since)
            and (args.until is None or event.created_at < args.until)
        ]
    return found[:limit]


_ALL = 10_000_000

_PURGE_FILTERS = {"account": "account", "provider": "provider", "order": "order_id", "since": "created_after"}
"""purge's filter options, and what `EventLog.purge` and `find` call them."""


def add_events_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = commands.add_parser("events", help="list, show, retry, replay or purge recorded events")
    add_where(events)
    actions = events.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="events, newest first")
    _add_filters(listing)
    listing.add_argument("--dead", action="store_true", help="only dead-lettered events")
    listing.add_argument(
        "--limit", type=positive_int, default=50, help="at most this many (default: %(default)s)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line, no header")

    show = actions.add_parser("show", help="one event with its PaymentResult (JSON)")
    show.add_argument("event_id")
    show.add_argument("--json", action="store_true", help="accepted for symmetry: show always prints JSON")

    for name, text in (
        ("retry", "deliver again to the subscribers that have not succeeded"),
        ("replay", "deliver again to every subscriber, even for completed events"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "event_ids", nargs="*", metavar="EVENT_ID", help="event ids; - reads them from stdin"
        )
        _add_filters(action)
        action.add_argument("--json", action="store_true", help="print a JSON summary object")
        action.add_argument("--dead", action="store_true", help="every dead-lettered event")
        action.add_argument("--released", action="store_true", help="every event left by a failed delivery")
        if name == "replay":
            action.add_argument(
                "--rejected",
                action="store_true",
                help="every event an account check refused (re-checked with the current settings)",
            )

    purge = actions.add_parser("purge", help="delete old settled (or other) events")
    purge.add_argument("--older-than", type=days, metavar="DAYS", help="default: the retention_days setting")
    purge.add_argument(
        "--state",
        action="append",
        choices=[s.value for s in EventState],
        help=f"default: {', '.join(s.value for s in RETAINED)}; others are not delivered yet and ask first",
    )
    purge.add_argument(
        "--until",
        type=moment,
        help="only events last updated before this time: 30m, 1h, 2d, 1w ago or ISO (UTC unless an offset); "
        "with --older-than, the earlier of the two",
    )
    _add_filters(purge, purge=True)
    purge.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    purge.add_argument("--yes", action="store_true", help="purge undelivered events without asking")
    purge.add_argument("--json", action="store_true", help="print a JSON summary object")
    for action in actions.choices.values():
        add_where(action, suppress=True)


def open_where(args: argparse.Namespace, command: str = "events") -> Notifier:
    """The notifier of --config or --store (exactly one), refusing a SQLite file that is not there:
    a typo would otherwise create an empty store and report that it holds nothing."""
    config, store = getattr(args, "config", None), getattr(args, "store", None)
    if (config is None) == (store is None):
        raise ConfigurationError(f"{command}: give exactly one of --config FILE or --store URL")
    if config is not None and not config.is_file():
        raise ConfigurationError(f"no config file {str(config)!r}")
    notifier = Notifier.from_config(config) if config is not None else Notifier(store)
    require_existing(notifier, command)
    return notifier


def run_events(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    notifier = open_where(args)

    async def main() -> int:
        try:
            return await _dispatch(notifier, args, out or sys.stdout)
        finally:
            await notifier.store.close()

    return asyncio.run(main())


async def _dispatch(notifier: Notifier, args: argparse.Namespace, out: IO[str]) -> int:
    if args.action == "list":
        events = await _select(notifier, args, args.limit)
        if not args.json:
            out.write(_HEADER + "\n")
        for event in events:
            out.write((json.dumps(_as_dict(event)) if args.json else _line(event)) + "\n")
        return 0
    if args.action == "show":
        found = await _by_id_or_prefix(notifier, args.event_id)
        details = _as_dict(found) | {"result": json.loads(found.result_json)}
        out.write(json.dumps(details, indent=2, ensure_ascii=False) + "\n")
        return 0
    if args.action == "purge":
        return await _purge(notifier, args, out)
    return await _redeliver(notifier, args, out)


async def _redeliver(notifier: Notifier, args: argparse.Namespace, out: IO[str]) -> int:
    replay = args.action == "replay"
    ids = [await _full_id(notifier, i) for i in _read_ids(args.event_ids)]
    selections = [(args.dead, EventState.DEAD), (args.released, EventState.RELEASED)]
    selections.append((getattr(args, "rejected", False), EventState.REJECTED))
    for flag, state in selections:
        if flag:
            ids += [e.event_id for e in await notifier.store.find(states=[state], limit=1_000_000)]
    if _filtered(args):
        ids += [e.event_id for e in await _select(notifier, _without_dead(args), _ALL)]
    ids = list(dict.fromkeys(ids))  # each once, in the order given
    if not ids:
        asked = args.event_ids or args.dead or args.released or getattr(args, "rejected", False)
        if not (asked or _filtered(args)):
            raise ConfigurationError(
                f"{args.action}: no events selected; "
                "give EVENT_IDs (- for stdin), --dead, --released or filters"
            )
        # Asked for a selection that is empty today: a quiet night for a cron job, not an error.
        out.write(
            json.dumps({"nothing": True, "ids": []}) + "\n" if args.json else f"nothing to {args.action}\n"
        )
        return 0
    in_process = args.config is not None
    done, failed = 0, 0
    delivered: list[str] = []
    for event_id in progress(ids, label=args.action):
        try:
            if in_process:
                ok = await notifier.redeliver(event_id, replay=replay)
            else:
                ok = await _requeue(notifier, event_id, replay=replay)
        except PaynotifyError as exc:
            print(f"\n{event_id}: {exc}", file=sys.stderr)
            ok = False
        done, failed = (done + 1, failed) if ok else (done, failed + 1)
        if ok:
            delivered.append(event_id)
    verb = "delivered" if in_process else "requeued"
    if args.json:
        not_ids = [i for i in ids if i not in set(delivered)]
        summary = {verb: done, "not": failed, "ids": delivered, "not_ids": not_ids}
        out.write(json.dumps(summary) + "\n")
    else:
        verb = verb if in_process else "requeued for the dispatchers"
        out.write(f"{done} {verb}, {failed} not (unknown, in flight, not eligible or failed again)\n")
    return 0 if failed == 0 else 1


async def _purge(notifier: Notifier, args: argparse.Namespace, out: IO[str]) -> int:
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


_FULL_ID = 32
_PREFIX_MIN = 4
_CANDIDATES = 10
"""The most candidates an ambiguous prefix's error lists."""


async def _by_id_or_prefix(notifier: Notifier, given: str) -> StoredEvent:
    found = await notifier.store.get(await _full_id(notifier, given))
    if found is None:
        raise ConfigurationError(f"no event {given!r} in this store")
    return found


async def _full_id(notifier: Notifier, given: str) -> str:
    """The event id `given` starts, when it is shorter than an id and exactly one event has it.

    Stores look events up by whole id only, so a prefix reads the event list (newest first): a
    command an operator types, not a hot path."""
    if len(given) >= _FULL_ID or await notifier.store.get(given) is not None:
        return given
    if len(given) < _PREFIX_MIN:
        raise ConfigurationError(
            f"event id prefix {given!r} is too short: give {_PREFIX_MIN} or more characters"
        )
    matches = [e.event_id for e in await notifier.store.find(limit=_ALL) if e.event_id.startswith(given)]
    if len(matches) > 1:
        shown = ", ".join(matches[:_CANDIDATES]) + (", ..." if len(matches) > _CANDIDATES else "")
        raise ConfigurationError(
            f"event id prefix {given!r} is ambiguous: {len(matches)} events start with it: {shown}"
        )
    return matches[0] if matches else given


def _read_ids(given: Sequence[str]) -> list[str]:
    """The ids given, with `-` replaced by the ids on stdin (whitespace-separated: one a line, or
    `paynotify events list` output's first column through `cut`)."""
    ids: list[str] = []
    for item in given:
        ids += sys.stdin.read().split() if item == "-" else [item]
    return ids


def _without_dead(args: argparse.Namespace) -> argparse.Namespace:
    """The filters alone: --dead, --released and --rejected already added their own events."""
    return argparse.Namespace(**{**vars(args), "dead": False})


async def _requeue(notifier: Notifier, event_id: str, *, replay: bool) -> bool:
    event = await notifier.store.get(event_id)
    if event is not None and event.state is EventState.REJECTED:
        # A dispatcher would deliver it without the checks that refused it.
        raise ConfigurationError("a rejected event is replayed after its account's checks: give --config")
    return await notifier.store.requeue(event_id, replay=replay)


def progress(items: Sequence[T], *, label: str, stream: IO[str] = sys.stderr) -> Iterator[T]:
    """Yield `items`, drawing a progress bar on a terminal when there are enough to wait for."""
    total = len(items)
    draw = stream.isatty() and total > 1
    started = time.monotonic()
    for i, item in enumerate(items, 1):
        yield item
        if draw:
            filled = 30 * i // total
            rate = i / max(time.monotonic() - started, 1e-9)
            stream.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {i}/{total} {rate:.0f}/s")
            stream.flush()
    if draw:
        stream.write("\n")


def _as_dict(event: StoredEvent) -> dict[str, object]:
    return {
        "event_id": event.event_id,
        "account": event.account,
        "provider": event.provider,
        "kind": event.kind,
        "status": event.status,
        "order_id": event.order_id,
        "state": event.state.value,
        "attempts": event.attempts,
        "created_at": _time(event.created_at),
        "updated_at": _time(event.updated_at),
        "next_attempt_at": _time(event.next_attempt_at) if event.next_attempt_at else None,
        "last_error": event.last_error,
        "done_subscribers": sorted(event.done_subscribers),
    }


_HEADER = "  ".join(
    [
        "EVENT_ID".ljust(32),
        "CREATED".ljust(20),
        "STATE".ljust(9),
        "AT",
        "ACCOUNT",
        "KIND/STATUS",
        "ORDER",
        "ERROR",
    ]
)


def _line(event: StoredEvent) -> str:
    fields: Iterable[str] = (
        event.event_id,
        _time(event.created_at),
        event.state.value.ljust(9),
        f"{event.attempts:>2}",
        event.account,
        f"{event.kind}/{event.status}",
        event.order_id,
        (event.last_error or "")[:120],
    )
    return "  ".join(fields).rstrip()


def _time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
