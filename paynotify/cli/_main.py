"""The `paynotify` command: demo, init, serve, emulate, worker, send, events, query, reconcile,
webhooks, providers."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from paynotify import PaynotifyError
from paynotify.cli._arguments import hoist_global_options
from paynotify.cli._emulate import DEFAULT_EMULATOR, add_emulate_parser, run_emulate
from paynotify.cli._emulate import url as emulator_url
from paynotify.cli._events import add_events_parser, run_events
from paynotify.cli._events_options import port, positive_float, positive_int
from paynotify.cli._expectations import (
    add_expect_parser,
    add_expectations_parser,
    run_expect,
    run_expectations,
)
from paynotify.cli._query import add_query_parser, run_query
from paynotify.cli._reconcile import add_reconcile_parser, run_reconcile
from paynotify.cli._send import add_send_parser, run_send
from paynotify.cli._serve_options import (
    add_log_arguments,
    add_serve_arguments,
    check_workers,
    serve_options,
    versions,
)
from paynotify.cli._webhooks import add_webhooks_parser, run_webhooks

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="paynotify",
        description="Verified payment notifications.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # --version: one line per distribution
    )
    parser.add_argument("--version", action="version", version=versions())
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="send real signed notifications through a local server")
    demo.add_argument("--db", type=Path, help="SQLite file to use (default: a temporary one)")
    init = commands.add_parser("init", help="write a runnable service with throwaway test keys into DIR")
    init.add_argument("directory", type=Path, metavar="DIR")
    init.add_argument("--force", action="store_true", help="overwrite an existing DIR/paynotify.toml")
    init.add_argument(
        "--emulator",
        type=emulator_url,
        default=DEFAULT_EMULATOR,
        metavar="URL",
        help="where `paynotify emulate` will listen; every account's base_url (default: %(default)s)",
    )
    serve = commands.add_parser("serve", help="serve the accounts of a TOML config file")
    serve.add_argument("--config", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=port, default=8000, help="port to listen on (default: %(default)s)")
    serve.add_argument(
        "--limit-concurrency",
        type=positive_int,
        default=1000,
        help="connections and tasks at once before new ones get 503 (default: %(default)s)",
    )
    serve.add_argument(
        "--ops-port",
        type=port,
        help="also serve /healthz, /readyz, /metrics (/console when configured) on this port (0: a free one)",
    )
    serve.add_argument(
        "--ops-host", default="127.0.0.1", help="address of the ops port (default: %(default)s)"
    )
    serve.add_argument(
        "--timeout-keep-alive",
        type=positive_float,
        default=5.0,
        help="seconds an idle keep-alive connection is kept (default: %(default)s)",
    )
    add_serve_arguments(serve)
    add_emulate_parser(commands)
    worker = commands.add_parser("worker", help="dispatch queued events of a TOML config, without HTTP")
    worker.add_argument("--config", type=Path, required=True)
    add_log_arguments(worker)
    add_events_parser(commands)
    add_query_parser(commands)
    add_reconcile_parser(commands)
    add_expect_parser(commands)
    add_expectations_parser(commands)
    add_webhooks_parser(commands)
    add_send_parser(commands)
    commands.add_parser("providers", help="list the installed provider plugins")
    args = parser.parse_args(hoist_global_options(sys.argv[1:] if argv is None else argv))

    try:
        return _run(args)
    except PaynotifyError as exc:
        print(f"paynotify: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A path that is not there or not writable (demo --db, init DIR, a config): the message says
        # which; a traceback would only bury it.
        print(f"paynotify: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from paynotify.cli._demo import run_demo

        return run_demo(sys.stdout, args.db)
    if args.command == "init":
        from paynotify.cli._init import create_store, init_project

        made = init_project(args.directory, force=args.force, emulator=args.emulator)
        config = args.directory / "paynotify.toml"
        create_store(config)
        print(f"wrote {config} with accounts {', '.join(s.account for _, s in made)} (throwaway test keys)")
        print(f"run it: paynotify serve --config {config}")
        print(f"and its providers, locally: paynotify emulate --config {config}  (at {args.emulator})")
        print(f"then:   paynotify send {made[0][1].account} --order o-1 --amount 1.00 --config {config}")
        return 0
    if args.command in ("serve", "worker"):
        from paynotify import Notifier
        from paynotify.cli._serve import configure_logging, run_worker
        from paynotify.cli._serve import serve as serve_forever

        log_format = args.log_format
        configure_logging(log_format, args.log_level)
        if not args.config.is_file():
            raise PaynotifyError(f"no config file {str(args.config)!r}")
        notifier = Notifier.from_config(args.config)
        if args.command == "serve":
            check_workers(notifier, args.workers)
        if args.command == "worker":
            run_worker(notifier)
        else:
            serve_forever(
                notifier,
                args.host,
                args.port,
                config=args.config,
                limit_concurrency=args.limit_concurrency,
                timeout_keep_alive=args.timeout_keep_alive,
                ops=(args.ops_host, args.ops_port) if args.ops_port is not None else None,
                log_format=log_format,
                **serve_options(args),
            )
        return 0
    if args.command == "emulate":
        return run_emulate(args)
    if args.command == "events":
        return _quiet_on_closed_pipe(run_events, args)
    if args.command == "query":
        return run_query(args)
    if args.command == "reconcile":
        return run_reconcile(args)
    if args.command == "expect":
        return run_expect(args)
    if args.command == "expectations":
        return _quiet_on_closed_pipe(run_expectations, args)
    if args.command == "send":
        return run_send(args)
    if args.command == "webhooks":
        return _quiet_on_closed_pipe(run_webhooks, args)
    from paynotify import registry

    for name in registry.names():
        provider = registry.get(name)
        print(
            f"{name}\t{type(provider).__module__}.{type(provider).__qualname__}\t{sorted(provider.channels)}"
        )
    return 0


def _quiet_on_closed_pipe(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """`paynotify events list | head -1` ends quietly: a reader that stops is not an error."""
    try:
        code = run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's own advice: point stdout at devnull so the flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
