"""The examples under WSGI servers on the default SQLite store, stopped as each server is stopped:
the store closes, and nothing prints a traceback (issue 23: the close ran from `atexit`, after the
interpreter had stopped the SQLite writer's executor, and failed with "cannot schedule new futures
after shutdown")."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from _servers import subprocess_server
from conftest import APP_ID, SECRET, example_notify

EXAMPLES = Path(__file__).parent.parent / "examples"

WAITRESS_FLASK = ("waitress", "--listen=127.0.0.1:0", "flask_app:application")
WAITRESS_DJANGO = ("waitress", "--listen=127.0.0.1:0", "django_shop.wsgi:application")
SERVERS = {
    # waitress-serve exits (and so closes the store) on SIGINT; SIGTERM ends it without exit
    # handlers (Python's default): no traceback, and SQLite recovers its write-ahead log at the next open.
    "waitress-flask": (WAITRESS_FLASK, signal.SIGINT),
    "waitress-django": (WAITRESS_DJANGO, signal.SIGINT),
    "waitress-flask-sigterm": (WAITRESS_FLASK, signal.SIGTERM),
    "waitress-django-sigterm": (WAITRESS_DJANGO, signal.SIGTERM),
    "gunicorn-flask": (("gunicorn", "--bind=127.0.0.1:0", "flask_app:application"), signal.SIGTERM),
    "gunicorn-django": (("gunicorn", "--bind=127.0.0.1:0", "django_shop.wsgi:application"), signal.SIGTERM),
}


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_the_sqlite_store_closes_without_a_traceback(name: str, tmp_path: Path) -> None:
    command, stop = SERVERS[name]
    closes = not (command[0] == "waitress" and stop is signal.SIGTERM)
    if command[0] == "gunicorn":
        pytest.importorskip("gunicorn")
    (tmp_path / "secret").write_text(SECRET)
    config = tmp_path / "paynotify.toml"
    config.write_text(
        f'store = "sqlite:///events.db"\n[accounts.shop]\nprovider = "examplepay"\napp_id = "{APP_ID}"\n'
        'secret_file = "secret"\n'
    )
    # HOME: gunicorn's control socket goes there, so parallel runs do not share one.
    env = {"PAYNOTIFY_CONFIG": str(config), "HOME": str(tmp_path)}
    headers, body = example_notify("order-23")
    with subprocess_server(*command, cwd=EXAMPLES, env=env) as served:
        url = served.base_url + "/payments/shop/notify"
        reply = httpx.post(url, content=body, headers=headers, timeout=10)
        assert (tmp_path / "events.db-wal").exists()  # the store is open
        log = served.stop(stop)
    assert reply.content == b"OK", log
    assert "Traceback" not in log, log
    assert "Exception ignored" not in log, log
    # SQLite removes the write-ahead log when its last connection closes: the store was closed.
    assert (tmp_path / "events.db-wal").exists() is not closes, log
