"""What keeping the recent refusals (the console's Refused page) costs a request, through the ASGI
door with the memory store: a genuine Alipay notification (the accept path), an unsigned one (the
cheapest refusal: no signature to check) and one for an unknown account.

    python bench/refusals.py [--n 2000] [--rounds 9]
    python bench/refusals.py --against ../other-checkout [--pairs 5]
    python bench/refusals.py --ring-ab        # in one process: the ring kept, and not, in turn

With `--against TREE`, each pair runs this script once with TREE's `paynotify` (PYTHONPATH, from an
empty directory; the import is checked) and once with this checkout's, alternately, and prints
both per-request medians side by side. The providers are the installed ones either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


async def _call(app: Any, scope: dict[str, Any], headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """One request through `app` as a server makes it; its status (self-contained: the other
    checkout's bench package may differ)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}, receive, send)
    return int(sent[0]["status"])


def _scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 40000)}  # fmt: skip


def measure(n: int, rounds: int, ring_ab: bool = False) -> dict[str, Any]:
    from paynotify_alipay.testing import SELLER_ID, generate_key, make_notify, public_key_pem

    import paynotify
    from paynotify import Notifier
    from paynotify._stores.memory import MemoryStore

    quiet = logging.getLogger("paynotify")  # the sampled WARNINGs still made, written nowhere
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    key, app_id = generate_key(), "2021004100000000"
    notifier = Notifier("memory://")
    settings = {"app_id": app_id, "alipay_public_key": public_key_pem(key), "seller_id": SELLER_ID}
    notifier.add_account("shop", "alipay", **settings)
    notifier.subscribe(lambda result: None, name="sink")
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    genuine = [make_notify(key, app_id=app_id, out_trade_no=f"order-{i}") for i in range(n)]
    unsigned = [body.replace(b"&sign=", b"&nosign=") for body in genuine]
    app = notifier.asgi()
    shop, nobody = _scope("/shop/notify"), _scope("/nobody/notify")

    async def batch(scope: dict[str, Any], bodies: list[bytes], status: int) -> float:
        started = time.perf_counter()
        for body in bodies:
            got = await _call(app, scope, headers, body)
            if got != status:
                raise AssertionError(f"status {got}, not {status}")
        return (time.perf_counter() - started) / len(bodies) * 1e6

    recent = getattr(notifier.pipeline.refusals, "recent", None)

    def keeping(on: bool) -> None:
        """With the ring (as shipped) or with its two methods doing nothing (the A/B's control)."""
        if recent is not None:
            for method in ("refused", "unknown"):
                if on:
                    vars(recent).pop(method, None)
                else:
                    setattr(recent, method, lambda *args: None)

    async def run() -> dict[str, list[float]]:
        names = ["accepted", "refused", "unknown account"]
        if ring_ab:
            names += ["refused, ring off", "unknown account, ring off"]
        times: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(rounds):
            notifier.store = MemoryStore()  # every genuine notification new again
            times["accepted"].append(await batch(shop, genuine, 200))
            turns = ((True, False) if round_ % 2 == 0 else (False, True)) if ring_ab else (True,)
            for on in turns:  # neither always first
                keeping(on)
                suffix = "" if on else ", ring off"
                times["refused" + suffix].append(await batch(shop, unsigned, 200))  # Alipay's `fail`: a 200
                times["unknown account" + suffix].append(await batch(nobody, unsigned, 404))
            keeping(True)
        return times

    times = asyncio.run(run())
    result: dict[str, Any] = {name: statistics.median(values) for name, values in times.items()}
    result["paynotify"] = str(Path(paynotify.__file__).parent.parent)
    return result


def compare(other: Path, pairs: int, n: int, rounds: int) -> None:
    rows: dict[str, dict[str, list[float]]] = {}
    for pair in range(pairs):
        order = (("other", other), ("this", HERE))
        for label, tree in order if pair % 2 == 0 else order[::-1]:  # neither always goes first
            # Run as a script from an empty directory: no checkout's package is found by accident.
            env = {**os.environ, "PYTHONPATH": str(tree)}
            command = [sys.executable, str(Path(__file__).resolve()), "--n", str(n), "--rounds", str(rounds)]
            run = subprocess.run([*command, "--json"], env=env, cwd=tempfile.gettempdir(),
                                 capture_output=True, text=True, check=True)  # fmt: skip
            result = json.loads(run.stdout)
            if result.pop("paynotify") != str(tree):
                raise SystemExit(f"{tree}: paynotify was imported from elsewhere")
            for name, value in result.items():
                rows.setdefault(name, {}).setdefault(label, []).append(value)
    print(f"per request, µs (median of {pairs} runs of {rounds} rounds of {n}): {other} | this checkout")
    for name, by in rows.items():
        before, after = statistics.median(by["other"]), statistics.median(by["this"])
        spread = " | ".join(f"{min(by[side]):.1f}-{max(by[side]):.1f}" for side in ("other", "this"))
        change = (after - before) / before * 100
        print(f"  {name:16} {before:8.2f} | {after:8.2f}  ({change:+.1f} %)  runs {spread}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--ring-ab", action="store_true", help="this checkout: with and without the ring, in turn"
    )
    args = parser.parse_args()
    if args.against is not None:
        compare(args.against.resolve(), args.pairs, args.n, args.rounds)
        return
    result = measure(args.n, args.rounds, args.ring_ab)
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(
                f"{name:16} {value:8.2f} µs per request"
                if name != "paynotify"
                else f"(paynotify from {value})"
            )


if __name__ == "__main__":
    main()
