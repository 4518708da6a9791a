from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from django_project.payments import DELIVERED, notifier
from paynotify.contrib.django import paynotify_urls


def delivered(request: HttpRequest) -> JsonResponse:
    """What the subscriber saw, for the tests that reach the project over HTTP."""
    return JsonResponse({"orders": [r.order_id for r in DELIVERED]})


def csrf_guarded(request: HttpRequest) -> JsonResponse:
    """A plain POST view: CSRF applies here, so a 403 proves the middleware is on."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("payments/", include(paynotify_urls(notifier))),
    path("delivered", delivered),
    path("guarded", csrf_guarded),
]
