"""Django logs every response of 400 and over itself (logger django.request: 5xx at ERROR, 4xx at
WARNING); paynotify has already logged each of its outcomes at its level, and a duplicate that
arrives while the first is in flight is routine (WeChat Pay v3 is answered 503). Real Django test
client, a genuine WeChat Pay v3 notification (throwaway keys), a subscriber slow enough to overlap."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator

import django
import pytest
from _wechatpay_v3 import PROVIDER, payment, settings

from paynotify import Notifier, PaymentResult

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
django.setup()

from django.test import AsyncClient, override_settings  # noqa: E402 - after django.setup()

from paynotify.contrib.django import close, paynotify_urls  # noqa: E402

notifier = Notifier("memory://")
notifier.add_account("v3", PROVIDER, **settings())


@notifier.subscribe
def slow(result: PaymentResult) -> None:
    time.sleep(0.5)  # the duplicates below arrive while this holds the event


urlpatterns = [django.urls.path("payments/", django.urls.include(paynotify_urls(notifier)))]


@pytest.fixture(scope="module", autouse=True)
def _close_notifier() -> Iterator[None]:
    yield
    close(notifier)


@override_settings(ROOT_URLCONF=__name__)
async def test_in_flight_duplicates_503_are_not_logged_at_error_by_django(
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers, body = payment(out_trade_no="slow-1")
    client = AsyncClient()
    extra = {name.lower(): value for name, value in headers.items() if name.lower() != "content-type"}

    async def post() -> int:
        response = await client.post(
            "/payments/v3/notify", body, content_type="application/json", headers=extra
        )
        return response.status_code

    with caplog.at_level(logging.INFO):
        codes = await asyncio.gather(*(post() for _ in range(4)))
    assert sorted(codes) == [204, 503, 503, 503]
    assert [r for r in caplog.records if r.name == "django.request"] == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    in_flight = [r for r in caplog.records if getattr(r, "outcome", None) == "in_flight"]
    assert len(in_flight) == 3
    assert all(r.levelno == logging.INFO for r in in_flight)
