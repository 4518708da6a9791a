"""Selections and Requeue (issue 23): a selection never includes done events unless asked for
explicitly, says how many it leaves out before anything is done, and its POST refuses a done event
that was not asked for; under inline delivery the console does not offer Requeue (nothing would
take the event) and says plainly that a worker is required, on the page and to a POST."""

from __future__ import annotations

import re

from _console_data import PASSWORD, USER, shop
from test_console import client, csrf_of

from paynotify import EventState


def ids_of(html: str) -> list[str]:
    return re.findall(r'name="id" value="([0-9a-f]+)"', html)


async def test_a_replay_without_filters_leaves_the_done_events_out_and_counts_them() -> None:
    data = await shop(done=4)
    store = data.notifier.store
    done = {e.event_id for e in await store.find(states=[EventState.DONE])}
    assert len(done) == 4
    async with client(data, login=(USER, PASSWORD)) as http:
        confirm = await http.get("/console/bulk/replay")
        assert confirm.status_code == 200
        offered = ids_of(confirm.text)
        assert offered  # the dead, rejected and pending ones
        assert not done & set(offered)
        left_out = re.search(r'id="done-left-out">(.*?)</p>', confirm.text, re.S)
        assert left_out is not None
        assert left_out[1].startswith("4 done events (delivered already) also match and are left out")
        assert 'name="include_done"' not in confirm.text

        # A form that carries a done event's id without asking for done events: not taken.
        token = csrf_of(confirm)
        one_done = sorted(done)[0]
        result = await http.post("/console/bulk/replay", data={"csrf": token, "id": [one_done]})
        assert "0 of 1" in result.text
        assert "included explicitly" in result.text
        assert data.delivered == []

        # Asked for explicitly: listed, flagged, and replayed.
        explicit = await http.get("/console/bulk/replay", params={"include_done": "1"})
        assert done <= set(ids_of(explicit.text))
        assert re.search(r'id="done-included">4 of these \d+ are done', explicit.text)
        assert 'name="include_done" value="1"' in explicit.text
        result = await http.post(
            "/console/bulk/replay", data={"csrf": token, "id": [one_done], "include_done": "1"}
        )
        assert "1 of 1 delivered" in result.text
    assert len(data.delivered) == 1


async def test_a_selection_of_dead_letters_says_nothing_of_done_events() -> None:
    data = await shop()
    async with client(data, login=(USER, PASSWORD)) as http:
        confirm = await http.get("/console/bulk/replay", params={"state": "dead"})
        retry = await http.get("/console/bulk/retry")
    assert ids_of(confirm.text) == [data.ids["dead"]]
    assert 'id="done-left-out"' not in confirm.text  # a state filter that is not done
    assert 'id="done-left-out"' not in retry.text  # retry never takes done events


async def test_under_inline_delivery_requeue_is_not_offered_and_a_post_is_refused() -> None:
    data = await shop(delivery="inline")
    dead = data.ids["dead"]
    async with client(data, login=(USER, PASSWORD)) as http:
        event = await http.get(f"/console/events/{dead}")
        listing = await http.get("/console/events")
        assert "Retry…" in event.text  # the control: delivering now is offered
        assert "Requeue" not in event.text
        assert "Requeue the matching events" not in listing.text
        token = csrf_of(await http.get(f"/console/events/{dead}/retry"))
        for path in (f"/console/events/{dead}/requeue", "/console/bulk/requeue?state=dead"):
            page = await http.get(path)
            assert page.status_code == 409, path
            assert "a worker" in page.text
            assert 'id="confirm"' not in page.text
        refused = await http.post(f"/console/events/{dead}/requeue", data={"csrf": token})
        bulk = await http.post("/console/bulk/requeue", data={"csrf": token, "id": [dead]})
    assert refused.status_code == 409
    assert bulk.status_code == 409
    stored = await data.notifier.store.get(dead)
    assert stored is not None
    assert stored.state is EventState.DEAD  # not made pending for a dispatcher that is not there


async def test_under_queued_delivery_requeue_is_offered() -> None:
    data = await shop(delivery="queued")
    dead = data.ids["dead"]
    async with client(data, login=(USER, PASSWORD)) as http:
        event = await http.get(f"/console/events/{dead}")
        assert "Requeue…" in event.text
        token = csrf_of(await http.get(f"/console/events/{dead}/retry"))
        done = await http.post(f"/console/events/{dead}/requeue", data={"csrf": token})
    assert "1 of 1 requeued" in done.text
    stored = await data.notifier.store.get(dead)
    assert stored is not None
    assert stored.state is EventState.PENDING
