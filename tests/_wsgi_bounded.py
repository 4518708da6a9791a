"""The WSGI app of tests/test_wsgi_bounds.py, for servers run as a subprocess (gunicorn): ExamplePay
as "shop", with a body deadline of 2 s so that slow and stalled uploads take seconds."""

from __future__ import annotations

from conftest import APP_ID, SECRET

from paynotify import Notifier

BODY_TIMEOUT = 2.0

notifier = Notifier("memory://", body_timeout=BODY_TIMEOUT)
notifier.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
application = notifier.wsgi()
