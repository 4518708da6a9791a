"""`paynotify serve`'s deployment options (behind a proxy, several processes, log level) and
`paynotify --version`."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, distributions, version
from typing import TYPE_CHECKING, Any

from paynotify import ConfigurationError
from paynotify.cli._events_options import positive_int

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = [
    "LOG_LEVELS",
    "add_log_arguments",
    "add_serve_arguments",
    "check_workers",
    "serve_options",
    "versions",
]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """`--log-format` and `--log-level`, of `serve` and `worker`."""
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="json: one object per line, uvicorn's lines included (default: text)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="paynotify's and uvicorn's (default: %(default)s)",
    )


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    add_log_arguments(serve)
    serve.add_argument(
        "--root-path",
        default="",
        help="the path prefix a reverse proxy strips before forwarding, e.g. /payments (default: none)",
    )
    serve.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips for the client address (default: off)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="comma-separated proxy addresses (or *) whose forwarded headers count (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes; more than one needs a store they share, not memory:// (default: %(default)s)",
    )


def serve_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments `_serve.serve` takes from these options."""
    return {
        "log_level": args.log_level,
        "root_path": args.root_path,
        "proxy_headers": args.proxy_headers,
        "forwarded_allow_ips": args.forwarded_allow_ips,
        "workers": args.workers,
    }


def check_workers(notifier: Notifier, workers: int) -> None:
    """Several processes must share one store: each would otherwise deduplicate only its own
    deliveries, and a provider's retry reaching another process would be delivered again."""
    if workers < 2:
        return
    from paynotify import MemoryStore, SQLiteStore

    store = notifier.store
    if isinstance(store, MemoryStore) or (isinstance(store, SQLiteStore) and store.path == ":memory:"):
        raise ConfigurationError(
            f"--workers {workers} needs a store the processes share, and {type(store).__name__} lives "
            'inside one process: set store = "sqlite:///events.db" (one host), "postgresql://..." or '
            '"redis://..." in the config, or serve with --workers 1'
        )


def versions() -> str:
    """paynotify's version and each installed provider distribution's (paynotify-*)."""
    lines = [f"paynotify {_version('paynotify')}"]
    providers = sorted(
        {
            name
            for dist in distributions()
            if (name := (dist.metadata["Name"] or "")).lower().startswith("paynotify-")
        },
        key=str.lower,
    )
    lines += [f"{name} {_version(name)}" for name in providers]
    return "\n".join(lines)


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
        return "(not installed)"
