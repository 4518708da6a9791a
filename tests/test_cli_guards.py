"""The CLI given nonsense: numbers that make no sense are refused, a closed pipe ends quietly,
purging undelivered payments asks first (or needs --yes) and can be tried with --dry-run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import APP_ID, SECRET, example_notify
from test_delivery import request

from paynotify import EventState, Notifier
from paynotify.cli._main import main


def fill(url: str, *, queued: int = 0, done: int = 0) -> None:
    async def run() -> None:
        n = Notifier(url, delivery="queued", dispatcher=False) if queued else Notifier(url)
        n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
        n.subscribe(lambda r: None, name="noop")
        for i in range(queued or done):
            assert (await n.handle("shop", request(example_notify(f"o-{i}")))).body == b"OK"
        await n.store.close()

    asyncio.run(run())


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--limit", "-1"],
        ["list", "--limit", "0"],
        ["purge", "--older-than", "-1"],
        ["purge", "--older-than", "0"],
    ],
)
def test_numbers_that_make_no_sense_are_refused(
    url: str, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["events", "--store", url, *args])
    assert exit_.value.code == 2
    assert "must be" in capsys.readouterr().err


def test_list_limit_is_what_it_says(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    fill(url, done=5)
    assert main(["events", "--store", url, "list", "--limit", "2"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.startswith("EVENT_ID")
    assert len(rows) == 2


def test_a_closed_pipe_ends_quietly(url: str) -> None:
    fill(url, done=30)
    listing = subprocess.Popen(
        [sys.executable, "-m", "paynotify", "events", "--store", url, "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None
    # Closed before the listing is written (30 short lines would fit the pipe's buffer otherwise):
    # every write meets a reader that is gone, as with `| head -1` on a long listing.
    listing.stdout.close()
    _, err = listing.communicate(timeout=30)
    assert listing.returncode == 0
    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err


def test_purging_undelivered_events_asks_first_and_can_be_tried(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(url, queued=3)
    purge = ["events", "--store", url, "purge", "--state", "pending", "--older-than", "0.000001"]
    import time

    time.sleep(0.1)
    assert main([*purge, "--dry-run"]) == 0
    assert "would purge 3 pending events" in capsys.readouterr().out
    assert main(purge) == 2  # no terminal to ask on, no --yes
    assert "add --yes" in capsys.readouterr().err
    counts = asyncio.run(_count(url))
    assert counts.get(EventState.PENDING) == 3
    assert main([*purge, "--yes"]) == 0
    assert "purged 3 events" in capsys.readouterr().out


async def _count(url: str) -> dict[EventState, int]:
    n = Notifier(url)
    try:
        return await n.store.count()
    finally:
        await n.store.close()
