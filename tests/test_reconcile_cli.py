"""`paynotify reconcile` through `main()`, against the ledger provider's emulator served by uvicorn:
the report printed (text and JSON), the lost payment healed once, exit statuses without tracebacks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from _ledger_provider import DAY, LedgerEmulator, LedgerProvider, pin_store_clock
from test_query_cli import served

from paynotify import open_store, registry
from paynotify.cli import main

SINK = """
import json, pathlib

def record(result):
    with open(pathlib.Path(__file__).with_name("delivered.jsonl"), "a") as f:
        f.write(json.dumps({"event_id": result.event_id, "order_id": result.order_id}) + "\\n")
"""


def config(tmp_path: Path, base_url: str) -> Path:
    registry.register(LedgerProvider, replace=True)
    (tmp_path / "sink.py").write_text(SINK)
    (tmp_path / "secret").write_text("ledger-secret")
    path = tmp_path / "paynotify.toml"
    (tmp_path / "events.db").touch()  # serve or init makes the store; reconcile refuses one not there
    path.write_text(
        f'store = "sqlite:///{tmp_path / "events.db"}"\nsubscribers = ["sink:record"]\n\n[accounts.shop]\n'
        f'provider = "test-ledger"\nbase_url = "{base_url}"\nsecret_file = "{tmp_path / "secret"}"\n'
    )
    return path


async def lease(path: Path, token: str | None = None) -> str | None:
    """Take the day's lease, as another process would (with `token`: give it back)."""
    store = open_store(f"sqlite:///{path}")
    try:
        if token is not None:
            assert await store.reconciliations.release_lease("shop", DAY, token)
            return None
        return await store.reconciliations.take_lease("shop", DAY, seconds=3600)
    finally:
        await store.close()


def test_reconcile_prints_heals_once_and_exits_by_what_it_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    pin_store_clock(monkeypatch)  # the shop records on DAY, the emulator's day, whatever today is
    emu = LedgerEmulator()
    emu.pay("o-1", "12.34")
    day = str(DAY)
    with served(emu) as base:
        emu.host = base.removeprefix("http://")
        path = config(tmp_path, base)
        assert main(["reconcile", "shop", "--date", day, "--config", str(path)]) == 1
        text = capsys.readouterr().out
        assert "missing line 2: payment o-1" in text
        assert not (tmp_path / "delivered.jsonl").exists()
        assert main(["reconcile", "shop", "--date", day, "--heal", "--json", "--config", str(path)]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["healed"], report["discrepancies"][0]["healed"]) == (1, "delivered")
        assert report["discrepancies"][0]["event_id"] is not None
        assert main(["reconcile", "shop", "--date", day, "--heal", "--config", str(path)]) == 0
        assert "1 matched" in capsys.readouterr().out
        assert len((tmp_path / "delivered.jsonl").read_text().splitlines()) == 1
        emu.extra_lines.append("payment,broken")
        assert main(["reconcile", "shop", "--date", day, "--config", str(path)]) == 4
        assert "line 3" in capsys.readouterr().err
        assert main(["reconcile", "nobody", "--date", day, "--config", str(path)]) == 2
        # Another process holds the day's lease: try later, nothing done.
        held = asyncio.run(lease(tmp_path / "events.db"))
        assert held is not None
        assert main(["reconcile", "shop", "--date", day, "--config", str(path)]) == 3
        assert "being reconciled by another instance" in capsys.readouterr().err
        asyncio.run(lease(tmp_path / "events.db", held))
    assert main(["reconcile", "shop", "--date", day, "--config", str(path)]) == 3  # the server is gone
    err = capsys.readouterr().err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as bad_date:
        main(["reconcile", "shop", "--date", "31/01/2026", "--config", str(path)])
    assert bad_date.value.code == 2
