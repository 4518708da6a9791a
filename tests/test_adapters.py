"""`paynotify.adapters` is the public kit of a door: its names are pinned like the facade's, and
they are the very objects the three doors use (not copies that could drift)."""

from __future__ import annotations

import types

import paynotify.adapters
from paynotify import UnknownAccount, UnknownChannel

PINNED = {
    "BAD_LENGTH", "DISCONNECTED", "NOT_FOUND", "TOO_LARGE", "TOO_SLOW", "BodyRead", "NotifierLoop",
    "body_deadline", "declared_over", "keep_door_refusal", "method_reply", "notification_asgi",
    "notifier_loop", "split", "unknown_reply",
}  # fmt: skip


def test_the_kit_exports_exactly_its_pinned_names() -> None:
    exported = {
        name
        for name, value in vars(paynotify.adapters).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert exported == set(paynotify.adapters.__all__) == PINNED


def test_the_route_rules_answer_as_the_doors_do() -> None:
    a = paynotify.adapters
    assert a.split("/shop/notify") == ("shop", "notify")
    assert a.split("/shop/notify/extra") is None
    assert a.method_reply("POST", "notify") is None
    refused = a.method_reply("GET", "notify")
    assert refused is not None
    assert (refused.status, refused.headers["allow"]) == (405, "POST")
    assert a.declared_over("1025", 1024)
    assert not a.declared_over("1024", 1024)
    assert not a.declared_over("12x", 1024)  # not a number: the door's to judge
    assert (a.TOO_LARGE.status, a.TOO_SLOW.status, a.DISCONNECTED.status) == (413, 408, 400)
    assert a.unknown_reply(UnknownAccount("no account 'x'")).status == 404
    channel = UnknownChannel("no such channel", account="shop", channels=frozenset({"notify"}))
    assert b"/shop/notify" in a.unknown_reply(channel).body


def test_the_kit_hands_out_the_objects_the_doors_use() -> None:
    from paynotify import _adapter, _route, _socket_deadline

    a = paynotify.adapters
    assert (a.TOO_LARGE, a.split, a.declared_over) == (_route.TOO_LARGE, _route.split, _route.declared_over)
    assert (a.notifier_loop, a.body_deadline) == (_adapter.notifier_loop, _socket_deadline.body_deadline)
