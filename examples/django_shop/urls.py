# examples/django_shop/urls.py
from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from django_shop.payments import PAID, notifier
from paynotify.contrib.django import paynotify_urls


def order(request: HttpRequest, order_id: str) -> JsonResponse:
    return JsonResponse({"order_id": order_id, "paid": PAID.get(order_id, "no")})


urlpatterns = [
    # POST /payments/<account>/notify, GET|POST /payments/<account>/return
    path("payments/", include(paynotify_urls(notifier))),
    path("orders/<str:order_id>", order),
]
