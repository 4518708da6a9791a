"""The console's audit log and attempt history, over HTTP without a browser: every action the console
performs writes an audit entry naming the signed-in operator (never a credential), the event page
shows the event's attempts and the actions on it, the Audit page lists the entries newest first,
a page at a time. tests/test_console_browser_audit.py reads the same pages in Chromium."""

from __future__ import annotations

import re

import httpx
from _console_data import PASSWORD, USER, shop
from starlette.requests import Request
from test_console import TOKEN, client, csrf_of

from paynotify import AuditEntry
from paynotify.ops._console_audit import AUDIT_PAGE, operator_name

ORIGIN = {"origin": "http://console.test"}


async def test_a_retry_is_audited_with_the_signed_in_user_and_shown_on_the_event() -> None:
    data = await shop()
    dead = data.ids["dead"]
    async with client(data, login=(USER, PASSWORD)) as http:
        token = csrf_of(await http.get(f"/console/events/{dead}/retry"))
        done = await http.post(f"/console/events/{dead}/retry", data={"csrf": token})
        assert "1 of 1 delivered" in done.text
        (entry,) = await data.notifier.store.history.audit_log()
        assert (entry.operator, entry.action, entry.event_ids, entry.count, entry.outcome) == (
            USER, "retry", (dead,), 1, "ok",
        )  # fmt: skip
        page = (await http.get(f"/console/events/{dead}")).text
        actions = page[page.index('id="operator-actions"') :]
        assert f"<td>{USER}</td><td>retry</td><td>ok</td>" in actions
        attempts = page[page.index('id="attempts"') : page.index('id="operator-actions"')]
        assert "<td>delivered</td>" in attempts  # the retry's own delivery attempt
        audit = (await http.get("/console/audit")).text
        assert f"<td>{USER}</td>" in audit
        assert f'href="/console/events/{dead}"' in audit


async def test_a_refused_action_is_audited_with_why() -> None:
    data = await shop()
    rejected = data.ids["rejected"]
    async with client(data, login=(USER, PASSWORD)) as http:
        token = csrf_of(await http.get(f"/console/events/{rejected}/replay"))
        refused = await http.post(f"/console/events/{rejected}/replay", data={"csrf": token})
        assert "still refused" in refused.text
    (entry,) = await data.notifier.store.history.audit_log()
    assert entry.action == "replay"
    assert entry.outcome.startswith("still refused")


async def test_a_bulk_action_is_one_entry_with_its_selection_and_a_row_on_each_event() -> None:
    data = await shop()
    store = data.notifier.store
    async with client(data, login=(USER, PASSWORD)) as http:
        confirm = await http.get("/console/bulk/requeue?state=dead")
        ids = re.findall(r'name="id" value="([0-9a-f]+)"', confirm.text)
        selection = re.search(r'name="selection" value="([^"]*)"', confirm.text)
        assert selection is not None
        form = {"csrf": csrf_of(confirm), "id": ids, "selection": selection[1]}
        assert "requeued" in (await http.post("/console/bulk/requeue", data=form)).text
    (entry,) = await store.history.audit_log()
    assert (entry.action, entry.count, entry.selection, entry.operator) == (
        "bulk-requeue", len(ids), "state=dead", USER,
    )  # fmt: skip
    for event_id in ids:
        newest = (await store.history.attempts(event_id))[0]
        assert (newest.operator, newest.outcome) == (USER, "bulk-requeue")


async def test_a_token_or_the_applications_check_is_named_without_its_credential() -> None:
    def secret_header(request: Request) -> bool:
        return request.headers.get("authorization") == "Secret s3cr3t"

    guards: list[tuple[object, dict[str, str], str]] = [
        (TOKEN, {"authorization": f"Bearer {TOKEN}"}, "token"),
        (secret_header, {"authorization": "Secret s3cr3t"}, "app"),
    ]
    for guard, headers, name in guards:
        data = await shop()
        dead = data.ids["dead"]
        async with client(data, guard, headers={**headers, **ORIGIN}) as http:
            token = csrf_of(await http.get(f"/console/events/{dead}/retry"))
            await http.post(f"/console/events/{dead}/retry", data={"csrf": token})
        (entry,) = await data.notifier.store.history.audit_log()
        assert entry.operator == name
        assert TOKEN not in entry.to_json()
        assert "s3cr3t" not in entry.to_json()
    assert operator_name("basic:alice") == "alice"
    assert operator_name("app:Bearer x\x1fsession=y") == "app"


async def test_a_signed_in_session_names_its_operator() -> None:
    data = await shop()
    dead = data.ids["dead"]
    async with client(data, headers=ORIGIN) as http:
        signed_in = await http.post("/console/sign-in", data={"user": USER, "password": PASSWORD})
        assert signed_in.status_code == 303
        token = csrf_of(await http.get(f"/console/events/{dead}/retry"))
        await http.post(f"/console/events/{dead}/retry", data={"csrf": token})
    (entry,) = await data.notifier.store.history.audit_log()
    assert entry.operator == USER


async def test_the_audit_page_is_newest_first_a_page_at_a_time() -> None:
    data = await shop()
    history = data.notifier.store.history
    for n in range(AUDIT_PAGE + 3):
        await history.audit(AuditEntry.new(f"op-{n:03d}", "retry", [], at=1_700_000_000.0 + n))
    async with client(data, login=(USER, PASSWORD)) as http:
        first = (await http.get("/console/audit")).text
        operators = re.findall(r"<td>(op-\d+)</td>", first)
        assert len(operators) == AUDIT_PAGE
        assert operators[0] == f"op-{AUDIT_PAGE + 2:03d}"
        older = re.search(r'id="older" href="([^"]+)"', first)
        assert older is not None
        second = (await http.get(older[1].replace("&amp;", "&"))).text
        assert re.findall(r"<td>(op-\d+)</td>", second) == ["op-002", "op-001", "op-000"]
        assert 'id="older"' not in second
        assert (await http.get("/console/audit?before=../x")).status_code == 400


async def test_the_audit_link_is_in_the_navigation() -> None:
    data = await shop()
    async with client(data, login=(USER, PASSWORD)) as http:
        page: httpx.Response = await http.get("/console/")
    assert 'href="/console/audit"' in page.text
