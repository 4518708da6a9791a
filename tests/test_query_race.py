"""Issue 21: a query's answer and the notification of the same state, racing in two processes on
one store, are delivered exactly once, whichever wins (SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from _store_backends import drop, isolated_url
from paynotify_wechatpay.testing import generate_api_key

TESTS = Path(__file__).parent
ORDERS = 40


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "redis"])
def test_a_query_and_a_notification_racing_in_two_processes_deliver_once(
    backend: str, tmp_path: Path
) -> None:
    url = isolated_url(backend, tmp_path)
    record = tmp_path / "deliveries.txt"
    env = {**os.environ, "PAYNOTIFY_RACE_KEY": generate_api_key(), "PYTHONPATH": str(TESTS)}
    barrier = tmp_path / "ready"
    barrier.mkdir()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(TESTS / "_race_worker.py"),
                url,
                way,
                str(ORDERS),
                str(record),
                str(barrier),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for way in ("query", "notify")
    ]
    try:
        outputs = [worker.communicate(timeout=90) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
        asyncio.run(drop(backend, url))
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]
    lines = [line.split() for line in record.read_text().splitlines()]
    per_event = Counter(event_id for event_id, _, _ in lines)
    assert len(per_event) == ORDERS
    assert set(per_event.values()) == {1}, [e for e, n in per_event.items() if n > 1]
    # Both ways won some: the two processes really raced (not one finishing before the other began).
    ways = Counter(way for _, _, way in lines)
    assert set(ways) == {"query", "notify"}, ways
