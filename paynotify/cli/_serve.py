"""Running paynotify: the HTTP server (with SIGHUP reload), a dispatcher-only worker, and a
background server for the demo and tests."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import uvicorn
from starlette.types import ASGIApp

from paynotify import ConfigurationError, PaynotifyError

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = ["app_from_environment", "background_server", "run_worker", "serve", "uvicorn_config"]

log = logging.getLogger("paynotify")


def serve(
    notifier: Notifier,
    host: str,
    port: int,
    *,
    config: Path | None = None,
    limit_concurrency: int = 1000,
    timeout_keep_alive: float = 5.0,
    log_level: str = "info",
    log_format: str = "text",
    root_path: str = "",
    proxy_headers: bool = False,
    forwarded_allow_ips: str = "127.0.0.1",
    workers: int = 1,
    ops: tuple[str, int] | None = None,
) -> None:
    """Serve every account under uvicorn; SIGHUP re-reads the accounts from `config`. The sweeper
    runs in each process unless the config says `sweeper = false`.

    uvicorn's own bounds: past `limit_concurrency` connections new ones get 503 (the provider
    resends), and an idle keep-alive connection is closed after `timeout_keep_alive` seconds. A body
    that stalls is cut off by the route's own `body_timeout`.

    With `workers` > 1, uvicorn's supervisor runs that many processes, each reading `config` anew
    (`notifier` only proved it valid); SIGHUP then restarts them, which reloads everything.
    `ops` (host, port) serves `paynotify.ops.ops_app` there too, with metrics and traces attached
    (one process only: several would all bind that port, and each count only its own requests).
    """
    notifier.sweeps_by_default = True
    settings: dict[str, object] = {
        "host": host,
        "port": port,
        "limit_concurrency": limit_concurrency,
        "timeout_keep_alive": int(timeout_keep_alive) or 1,
        **logging_settings(log_level),
        "root_path": root_path,
        "proxy_headers": proxy_headers,
        "forwarded_allow_ips": forwarded_allow_ips,
    }
    if workers > 1 and ops is not None:
        raise ConfigurationError(
            "--ops-port serves one process's metrics: run --workers 1 per port, or scrape each instance"
        )
    if workers > 1:
        if config is None:
            raise ConfigurationError("several workers each read the config file: give config")
        # Spawned workers inherit the environment, not this process's objects.
        os.environ[_CONFIG_ENV] = str(config.resolve())
        os.environ[_LOG_LEVEL_ENV] = log_level
        os.environ[_LOG_FORMAT_ENV] = log_format
        # Before the workers start: uvicorn's supervisor binds the port itself (`--port` as given).
        announce(notifier, f"http://{_netloc(host, port)}{root_path}", None, console=False)
        uvicorn.run(_APP_FACTORY, factory=True, workers=workers, lifespan="on", **settings)  # type: ignore[arg-type]
        return
    servers = [uvicorn.Server(uvicorn_config(notifier.asgi(), **settings))]
    console = None
    if ops is not None:
        from paynotify.ops import Instrumentation, ops_app

        instrumentation = Instrumentation().attach(notifier)
        console = _console(notifier)
        app = ops_app(notifier, instrumentation=instrumentation, console=console)
        ops_settings = {"host": ops[0], "port": ops[1], **logging_settings(log_level)}
        servers.append(uvicorn.Server(uvicorn.Config(app, lifespan="off", **ops_settings)))  # type: ignore[arg-type]

    async def announced() -> None:
        # After start-up, for the port actually bound (--port 0 picks one).
        main_server = servers[0]
        while not main_server.started:
            if main_server.should_exit:
                return
            await asyncio.sleep(0.05)
        freeze_start_up_heap()
        base = f"http://{_netloc(host, _bound_port(main_server, port))}{root_path}"
        ops_bound = ops
        if ops is not None:
            while not servers[1].started:  # the ops port's own, for `--ops-port 0` too
                if servers[1].should_exit:
                    return
                await asyncio.sleep(0.05)
            ops_bound = (ops[0], _bound_port(servers[1], ops[1]))
        announce(notifier, base, ops_bound, console=console is not None)

    async def main() -> None:
        if config is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload, notifier, config)
        announcing = asyncio.create_task(announced())
        try:
            await asyncio.gather(*(server.serve() for server in servers))
        finally:
            # Stopped (or failed) before it started: nothing to announce.
            announcing.cancel()

    with _stopped_quietly():
        asyncio.run(main())


class _Stop(Exception):
    """SIGINT or SIGTERM asked the server to stop."""


def _stop(signum: int, frame: object) -> None:
    raise _Stop


@contextmanager
def _stopped_quietly() -> Iterator[None]:
    """A stop asked for by SIGINT or SIGTERM is a clean exit (status 0, no traceback).

    uvicorn shuts down gracefully on either signal and then raises it again for the handler it
    found: Python's default would print a KeyboardInterrupt traceback (SIGINT) or kill the process
    (SIGTERM). The handler it finds is this one, whose exception ends `asyncio.run` here; before
    uvicorn has started it stops start-up the same way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stop:
        log.info("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _bound_port(server: uvicorn.Server, asked: int) -> int:
    """The port `server` listens on: the one asked for, or the one `0` picked."""
    bound = [sock.getsockname() for listening in server.servers for sock in listening.sockets]
    return int(bound[0][1]) if bound else asked


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def announce(notifier: Notifier, base: str, ops: tuple[str, int] | None, *, console: bool) -> None:
    """Log every account's URLs (what to give the provider as notify_url and return_url) and the
    ops port's, once at start."""
    for name in sorted(notifier.accounts):
        account = notifier.accounts[name]
        channels = sorted(account.provider.channels)
        urls = ", ".join(f"{channel} {base}/{name}/{channel}" for channel in channels)
        log.info("account %s (%s): %s", name, account.provider.name, urls)
    if ops is not None:
        at = f"http://{_netloc(*ops)}"
        pages = ["healthz", "readyz", "metrics"] + (["console/"] if console else [])
        log.info("ops: %s", ", ".join(f"{at}/{page}" for page in pages))


_CONFIG_ENV = "PAYNOTIFY_SERVE_CONFIG"
_LOG_LEVEL_ENV = "PAYNOTIFY_SERVE_LOG_LEVEL"
_LOG_FORMAT_ENV = "PAYNOTIFY_SERVE_LOG_FORMAT"
_APP_FACTORY = "paynotify.cli._serve:app_from_environment"


def logging_settings(log_level: str) -> dict[str, object]:
    """uvicorn's logging, made paynotify's: no handlers of its own (its lines reach the root
    logger, so --log-format json makes them JSON too), and the access log only at debug: at the
    default level a notification writes paynotify's one line, not a second one of uvicorn's."""
    return {"log_level": log_level, "log_config": None, "access_log": log_level == "debug"}


class PathOnly(logging.Filter):
    """Drops the query string from uvicorn's access lines: a return URL's carries the buyer's
    order and the provider's `sign`, which have no place in a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].partition("?")[0], *args[3:])
        return True


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `sys.stderr` as it is at each line, as `logging.lastResort` does: a command run
    in-process (`main([...])` from a test or a wrapper that swaps sys.stderr) must not leave the
    root logger writing to a stream that has since been closed."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass  # StreamHandler.__init__ sets it: the property above always wins


def configure_logging(log_format: str = "text", level: str = "info") -> None:
    """One handler on the root logger, for paynotify's lines and uvicorn's alike."""
    handler = _Stderr()
    if log_format == "json":
        from paynotify.ops import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Python's warnings (a subscriber module's DeprecationWarning) through the same handler: with
    # json, a line of their own in plain text would break a log shipper's parsing.
    logging.captureWarnings(True)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, PathOnly) for f in access.filters):
        access.addFilter(PathOnly())


def uvicorn_config(app: ASGIApp, **settings: object) -> uvicorn.Config:
    """The uvicorn configuration of one `paynotify serve` process."""
    return uvicorn.Config(app, lifespan="on", **settings)  # type: ignore[arg-type]


def app_from_environment() -> ASGIApp:
    """The app of one worker process of `paynotify serve --workers N` (uvicorn's factory)."""
    from paynotify import Notifier

    configure_logging(os.environ.get(_LOG_FORMAT_ENV, "text"), os.environ.get(_LOG_LEVEL_ENV, "info"))
    notifier = Notifier.from_config(os.environ[_CONFIG_ENV])
    notifier.sweeps_by_default = True  # each process sweeps; the leases keep them apart
    app = notifier.asgi()
    freeze_start_up_heap()
    return app


def freeze_start_up_heap() -> None:
    """Move everything alive after start-up (modules, providers, keys, the app) out of the cyclic
    collector's reach (`gc.freeze`): a full collection then walks only what was made since, not the
    whole base heap, which took 23-48 ms every few seconds under load (issue 27). Those objects are
    never collected (they live as long as the process anyway)."""
    gc.collect()
    gc.freeze()
    log.debug("start-up heap frozen: %d objects out of the collector's reach", gc.get_freeze_count())


def _console(notifier: Notifier) -> object | None:
    """The console for the ops port, when credentials are in the environment (a bearer token, or a
    user and password); without them the ops port serves health and metrics only."""
    from paynotify.ops import BasicAuth, BearerToken, console_app

    if os.environ.get("PAYNOTIFY_CONSOLE_TOKEN"):
        auth: object = BearerToken.from_env("PAYNOTIFY_CONSOLE_TOKEN")
    elif os.environ.get("PAYNOTIFY_CONSOLE_USER") and os.environ.get("PAYNOTIFY_CONSOLE_PASSWORD"):
        auth = BasicAuth.from_env("PAYNOTIFY_CONSOLE_USER", "PAYNOTIFY_CONSOLE_PASSWORD")
    else:
        log.info("ops port: no console (set PAYNOTIFY_CONSOLE_TOKEN, or _USER and _PASSWORD, to serve it)")
        return None
    return console_app(notifier, auth=auth)


def reload(notifier: Notifier, config: Path) -> None:
    """Swap in the accounts of `config`; a bad file is refused and the running accounts stay.

    Only accounts reload (keys, settings, added or removed accounts); the store, the delivery
    options and the subscribers need a restart.
    """
    try:
        notifier.reload_accounts(config)
    except PaynotifyError as exc:
        log.error("reload of %s refused, still serving the previous accounts: %s", config, exc)
        return
    log.info("reloaded %s: accounts %s", config, ", ".join(sorted(notifier.accounts)))


def run_worker(notifier: Notifier) -> None:
    """Run the queued-delivery dispatcher (and the sweeper, unless `sweeper = false`) without HTTP
    until SIGINT or SIGTERM."""
    if notifier.delivery != "queued":
        raise ConfigurationError('paynotify worker dispatches queued delivery: set delivery = "queued"')

    notifier.sweeps_by_default = True

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await notifier.open(dispatcher=True)
        freeze_start_up_heap()
        try:
            log.info("worker dispatching for accounts %s", ", ".join(sorted(notifier.accounts)))
            await stop.wait()
        finally:
            await notifier.aclose()
        log.info("worker stopped")

    asyncio.run(main())


@contextmanager
def background_server(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[int]:
    """Serve `app` on a free port of `host` in a thread; yields the port, stops on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))  # binding port 0 first means no race for a "free" port
    port: int = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
