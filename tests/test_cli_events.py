"""`paynotify events`: the header row, --json everywhere, the filters, ids from stdin."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import pytest
from conftest import APP_ID, SECRET, example_notify
from test_delivery import request

from paynotify import Notifier
from paynotify.cli._main import main


def fill(config: Path, orders: dict[str, str], *, failing: bool = False) -> None:
    """One event per (order -> account) through the file's notifier; `failing` leaves them released."""

    async def run() -> None:
        n = Notifier.from_config(config)

        def subscriber(result: object) -> None:
            if failing:
                raise RuntimeError("down")

        n.subscribe(subscriber, name="sub")
        for order, account in orders.items():
            await n.handle(account, request(example_notify(order)))
        await n.store.close()

    asyncio.run(run())


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "secret").write_text(SECRET)
    path = tmp_path / "paynotify.toml"
    accounts = "".join(
        f'[accounts.{name}]\nprovider = "examplepay"\napp_id = "{APP_ID}"\nsecret_file = "secret"\n'
        for name in ("shop", "other")
    )
    path.write_text(f'store = "sqlite:///events.db"\n{accounts}')
    return path


def events(config: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["events", "--config", str(config), *args])
    return code, capsys.readouterr().out


def test_list_has_a_header_row_and_json_has_none(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config, {"o-1": "shop"})
    _, text = events(config, "list", capsys=capsys)
    header, row = text.splitlines()
    assert header.split() == [
        "EVENT_ID",
        "CREATED",
        "STATE",
        "AT",
        "ACCOUNT",
        "KIND/STATUS",
        "ORDER",
        "ERROR",
    ]
    assert "o-1" in row
    # The columns line up under their names.
    assert row.index("done") == header.index("STATE")
    _, text = events(config, "list", "--json", capsys=capsys)
    assert [json.loads(line)["order_id"] for line in text.splitlines()] == ["o-1"]


def test_list_help_says_the_default_limit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["events", "--store", "memory://", "list", "--help"])
    assert "(default: 50)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("filters", "orders"),
    [
        (["--account", "other"], ["o-3"]),
        (["--provider", "examplepay"], ["o-1", "o-2", "o-3"]),
        (["--provider", "alipay"], []),
        (["--order", "o-2"], ["o-2"]),
        (["--state", "done"], ["o-1", "o-2", "o-3"]),
        (["--state", "dead"], []),
        (["--since", "2000-01-01"], ["o-1", "o-2", "o-3"]),
        (["--until", "2000-01-01T08:00+08:00"], []),
        (["--since", "2999-01-01"], []),
    ],
)
def test_list_filters(
    config: Path, capsys: pytest.CaptureFixture[str], filters: list[str], orders: list[str]
) -> None:
    fill(config, {"o-1": "shop", "o-2": "shop", "o-3": "other"})
    _, text = events(config, "list", "--json", *filters, capsys=capsys)
    assert sorted(json.loads(line)["order_id"] for line in text.splitlines()) == orders


def test_since_and_until_are_utc_unless_an_offset_is_given(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(config, {"o-1": "shop"})
    _, text = events(config, "list", "--json", capsys=capsys)
    created = json.loads(text)["created_at"]  # e.g. 2026-12-01T13:49:29Z
    naive = created.removesuffix("Z")
    assert events(config, "list", "--json", "--since", naive, capsys=capsys)[1]  # the same second, UTC
    # The same wall-clock time in Beijing is 8 hours earlier in UTC: the event is after it.
    assert events(config, "list", "--json", "--until", naive + "+08:00", capsys=capsys)[1] == ""
    with pytest.raises(SystemExit):
        main(["events", "--config", str(config), "list", "--since", "yesterday"])
    assert "nor an ISO date" in capsys.readouterr().err


def test_retry_by_filter_and_json_summary(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config, {"o-1": "shop", "o-2": "shop", "o-3": "other"}, failing=True)
    code, text = events(config, "retry", "--account", "shop", "--json", capsys=capsys)
    summary = json.loads(text)
    assert (code, summary["delivered"], summary["not"]) == (0, 2, 0)
    _, listed = events(config, "list", "--json", "--state", "done", capsys=capsys)
    assert sorted(json.loads(line)["order_id"] for line in listed.splitlines()) == ["o-1", "o-2"]
    assert sorted(summary["ids"]) == sorted(json.loads(line)["event_id"] for line in listed.splitlines())


def test_replay_reads_event_ids_from_stdin(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(config, {"o-1": "shop", "o-2": "other"})
    _, listed = events(config, "list", "--json", capsys=capsys)
    ids = [json.loads(line)["event_id"] for line in listed.splitlines()]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join([*ids, "no-such-event"]) + "\n"))
    code, text = events(config, "replay", "-", "--json", capsys=capsys)
    assert code == 1  # one of them is unknown
    assert json.loads(text) == {"delivered": 2, "not": 1, "ids": ids, "not_ids": ["no-such-event"]}


def test_purge_json_and_until(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config, {"o-1": "shop"})
    tomorrow = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 86400))
    _, text = events(config, "purge", "--until", "2000-01-01", "--json", capsys=capsys)
    assert json.loads(text)["purged"] == 0
    _, text = events(config, "purge", "--until", tomorrow, "--dry-run", "--json", capsys=capsys)
    assert json.loads(text)["would_purge"] == 1
    _, text = events(config, "purge", "--until", tomorrow, "--json", capsys=capsys)
    assert json.loads(text) == {
        "purged": 1,
        "states": ["done", "rejected", "unhandled"],
        "before": tomorrow + "Z",
    }


def test_purge_takes_the_filters_and_its_dry_run_counts_with_them(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(config, {"o-1": "shop", "o-2": "other", "o-3": "shop"})
    tomorrow = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 86400))
    purge = ["purge", "--until", tomorrow, "--account", "shop"]
    _, text = events(config, *purge, "--dry-run", "--json", capsys=capsys)
    summary = {"states": ["done", "rejected", "unhandled"], "before": tomorrow + "Z", "account": "shop"}
    assert json.loads(text) == {"would_purge": 2, **summary}
    _, text = events(
        config, "purge", "--until", "2000-01-01", "--account", "shop", "--dry-run", "--json", capsys=capsys
    )
    assert json.loads(text)["would_purge"] == 0
    _, text = events(config, *purge, "--dry-run", capsys=capsys)
    settled = "done, rejected, unhandled events"
    assert text == f"would purge 2 {settled} last updated before {tomorrow}Z with account shop\n"
    _, text = events(config, *purge, "--json", capsys=capsys)
    assert json.loads(text) == {"purged": 2, **summary}
    _, listed = events(config, "list", "--json", capsys=capsys)
    assert [json.loads(line)["order_id"] for line in listed.splitlines()] == ["o-2"]

    fill(config, {"o-4": "shop", "o-5": "shop"})
    narrow = ["--order", "o-4", "--provider", "examplepay", "--since", "2000-01-01"]
    _, text = events(config, *purge, *narrow, "--dry-run", capsys=capsys)
    assert text.startswith("would purge 1 ")
    assert text.endswith(
        " with account shop, provider examplepay, order o-4, created since 2000-01-01T00:00:00Z\n"
    )
    _, text = events(config, *purge, *narrow, "--json", capsys=capsys)
    assert json.loads(text) == {
        "purged": 1,
        **summary,
        "provider": "examplepay",
        "order": "o-4",
        "since": "2000-01-01T00:00:00Z",
    }
    _, text = events(config, *purge, "--provider", "otherpay", capsys=capsys)
    assert text == "purged 0 events with account shop, provider otherpay\n"
    _, listed = events(config, "list", "--json", capsys=capsys)
    assert sorted(json.loads(line)["order_id"] for line in listed.splitlines()) == ["o-2", "o-5"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_purging_undelivered_events_with_filters_still_asks(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(config, {"o-1": "shop", "o-2": "other"}, failing=True)
    tomorrow = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 86400))
    purge = ["events", "--config", str(config), "purge", "--state", "released", "--until", tomorrow]
    assert main([*purge, "--account", "shop"]) == 2  # no terminal to ask on, no --yes
    assert "add --yes" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    assert main([*purge, "--account", "shop", "--json"]) == 1
    out, err = capsys.readouterr()
    assert f"purge released events last updated before {tomorrow}Z with account shop?" in err
    assert json.loads(out)["purged"] == 0
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    assert main([*purge, "--account", "shop"]) == 0
    assert capsys.readouterr().out == "purged 1 events with account shop\n"
    _, listed = events(config, "list", "--json", capsys=capsys)
    assert [json.loads(line)["order_id"] for line in listed.splitlines()] == ["o-2"]


def test_list_search_finds_by_order_prefix_any_case_and_event_id_prefix(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(config, {"INV-2024-1": "shop", "inv-2024-2": "other", "X-1": "shop"})
    _, text = events(config, "list", "--json", "--search", "Inv-2024", capsys=capsys)
    found = [json.loads(line) for line in text.splitlines()]
    assert sorted(e["order_id"] for e in found) == ["INV-2024-1", "inv-2024-2"]
    _, text = events(config, "list", "--json", "--search", found[0]["event_id"][:8], capsys=capsys)
    assert [json.loads(line)["event_id"] for line in text.splitlines()] == [found[0]["event_id"]]
    _, text = events(config, "list", "--json", "--search", "2024", capsys=capsys)
    assert text.strip() == ""
