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
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO, TypeVar

from paynotify import ConfigurationError, EventState, Notifier, PaynotifyError, StoredEvent
from paynotify.cli._arguments import require_existing
from paynotify.cli._events_audit import attempts_of, audit, record_action, selection_of
from paynotify.cli._events_options import ALL as _ALL
from paynotify.cli._events_options import add_events_parser, filtered
from paynotify.cli._events_purge import purge
from paynotify.cli._events_show import HEADER, as_dict, by_id_or_prefix, full_id, line

__all__ = ["add_events_parser", "open_where", "progress", "require_existing", "run_events"]

T = TypeVar("T")


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
            out.write(HEADER + "\n")
        for event in events:
            out.write((json.dumps(as_dict(event)) if args.json else line(event)) + "\n")
        return 0
    if args.action == "show":
        found = await by_id_or_prefix(notifier, args.event_id)
        details = as_dict(found) | {"result": json.loads(found.result_json)}
        details["attempts"] = await attempts_of(notifier, found.event_id)
        out.write(json.dumps(details, indent=2, ensure_ascii=False) + "\n")
        return 0
    if args.action == "purge":
        return await purge(notifier, args, out)
    if args.action == "audit":
        return await audit(notifier, args, out)
    return await _redeliver(notifier, args, out)


async def _redeliver(notifier: Notifier, args: argparse.Namespace, out: IO[str]) -> int:
    replay = args.action == "replay"
    ids = [await full_id(notifier, i) for i in _read_ids(args.event_ids)]
    selections = [(args.dead, EventState.DEAD), (args.released, EventState.RELEASED)]
    selections.append((getattr(args, "rejected", False), EventState.REJECTED))
    for flag, state in selections:
        if flag:
            ids += [e.event_id for e in await notifier.store.find(states=[state], limit=1_000_000)]
    if filtered(args):
        ids += [e.event_id for e in await _select(notifier, _without_dead(args), _ALL)]
    ids = list(dict.fromkeys(ids))  # each once, in the order given
    if not ids:
        asked = args.event_ids or args.dead or args.released or getattr(args, "rejected", False)
        if not (asked or filtered(args)):
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
    await record_action(notifier, args.action, ids, delivered, selection=selection_of(args))
    verb = "delivered" if in_process else "requeued"
    if args.json:
        not_ids = [i for i in ids if i not in set(delivered)]
        summary = {verb: done, "not": failed, "ids": delivered, "not_ids": not_ids}
        out.write(json.dumps(summary) + "\n")
    else:
        verb = verb if in_process else "requeued for the dispatchers"
        out.write(f"{done} {verb}, {failed} not (unknown, in flight, not eligible or failed again)\n")
    return 0 if failed == 0 else 1


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
