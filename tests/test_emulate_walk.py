"""The walk of docs/develop-without-the-provider.md, as a developer takes it, in subprocesses:
`paynotify init` -> `paynotify serve` and `paynotify emulate` on free ports of 127.0.0.1 -> an order
whose notification the emulator drops -> `paynotify expect` -> the sweeper of serve recovers it,
once, through a query answered and signed by the emulator with the keys init wrote.

The waits are bounded: each watches the serve process's log for the line the sweeper writes (a
subprocess can be observed no other way) and fails with the logs at its deadline.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _servers import Served, subprocess_server
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from paynotify.cli._main import main

ACCOUNTS = {
    "shop-alipay": "alipay",
    "shop-wechat-v2": "wechatpay-v2",
    "shop-wechat-v3": "wechatpay-v3",
    "shop-unionpay": "unionpay",
}
_WAIT = 30.0


@dataclass
class Walk:
    config: Path
    emulator: str
    ops: str
    served: Served
    emulated: Served

    def logs(self) -> str:
        return (
            self.served.log.decode(errors="replace")
            + "\n--- emulate ---\n"
            + self.emulated.log.decode(errors="replace")
        )

    def wait_for(self, *lines: str) -> None:
        """Until every line is in serve's log: bounded, failing with both logs."""
        deadline = time.monotonic() + _WAIT
        while not all(line in self.served.log.decode(errors="replace") for line in lines):
            if (
                time.monotonic() > deadline
                or self.served.process is None
                or self.served.process.poll() is not None
            ):
                pytest.fail(f"not seen within {_WAIT:g} s: {lines}\n{self.logs()}")
            time.sleep(0.1)


def _free_port() -> int:
    # The emulator's address is written into the config (base_url) before it starts, so its port
    # is chosen here; the serve and ops ports too (serve's is read from its log: port 0).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _walk(tmp_path: Path, *, before: Callable[[Path], None] | None = None) -> Iterator[Walk]:
    directory = tmp_path / "service"
    emulator = f"http://127.0.0.1:{_free_port()}"
    assert main(["init", str(directory), "--emulator", emulator]) == 0
    config = directory / "paynotify.toml"
    # The documented knob: the first question right after `expect`, not a minute later.
    config.write_text("first_query_after = 0.2\n" + config.read_text())
    if before is not None:
        before(directory)
    serve_port, ops_port = _free_port(), _free_port()
    service = f"http://127.0.0.1:{serve_port}"  # chosen, not read from the log: the ops port logs too
    serve = (
        "paynotify",
        "serve",
        "--config",
        str(config),
        "--port",
        str(serve_port),
        "--ops-port",
        str(ops_port),
    )
    with subprocess_server(*serve) as served:
        emulate = ("paynotify", "emulate", "--config", str(config), "--port", emulator.rsplit(":", 1)[1],
                   "--notify-to", service)  # fmt: skip
        with subprocess_server(*emulate) as emulated:
            yield Walk(config, emulator, f"http://127.0.0.1:{ops_port}", served, emulated)


def _order_id(account: str) -> str:
    return account.replace("-", "") + "0001"  # letters and digits: every provider's order id shape


def _refund_id(account: str) -> str:
    return account.replace("-", "") + "0001R1"


def _json_lines(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _metric(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of `name` with exactly these labels (0 when absent)."""
    for line in metrics.splitlines():
        found = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if found and dict(re.findall(r'(\w+)="([^"]*)"', found.group(1))) == labels:
            return float(found.group(2))
    return 0.0


def test_a_dropped_notification_is_recovered_once_by_the_sweeper_for_every_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _walk(tmp_path) as walk, httpx.Client(timeout=10) as client:
        listed = client.get(f"{walk.emulator}/_emulator").json()["accounts"]
        assert {a["account"] for a in listed} == set(ACCOUNTS)
        for account in ACCOUNTS:
            created = client.post(
                f"{walk.emulator}/_emulator/{account}/orders",
                json={"order_id": _order_id(account), "amount": "88.88", "notify": False},
            )
            assert created.status_code == 201, created.text
            assert (created.json()["notified"], created.json()["status"]) == (False, None)
            expect = ["expect", account, _order_id(account), "--amount", "88.88", "--until", "1h",
                      "--at", created.json()["at"], "--config", str(walk.config)]  # fmt: skip
            assert main(expect) == 0
        walk.wait_for(
            *(f"sweeper recovered payment {_order_id(a)!r} on account {a!r}: succeeded" for a in ACCOUNTS)
        )
        # The notification comes after all, late: acknowledged, and not delivered again.
        for account in ACCOUNTS:
            late = client.post(
                f"{walk.emulator}/_emulator/{account}/orders",
                json={"order_id": _order_id(account), "amount": "88.88", "notify": True},
            )
            assert late.status_code == 201, late.text
            assert late.json()["status"] in (200, 204), (late.text, walk.logs())
        # A refund whose notification is lost, the same way.
        for account in ACCOUNTS:
            refunded = client.post(
                f"{walk.emulator}/_emulator/{account}/refunds",
                json={"order_id": _order_id(account), "refund_id": _refund_id(account), "amount": "10.00",
                      "notify": False},
            )  # fmt: skip
            assert refunded.status_code == 201, refunded.text
            at, refund = refunded.json()["at"], _refund_id(account)
            expect = ["expect", account, _order_id(account), "--refund", refund, "--amount", "10.00",
                      "--until", "1h", "--at", at, "--config", str(walk.config)]  # fmt: skip
            assert main(expect) == 0
        walk.wait_for(
            *(f"sweeper recovered refund {_refund_id(a)!r} on account {a!r}: succeeded" for a in ACCOUNTS)
        )
        metrics = client.get(f"{walk.ops}/metrics").text
        log = walk.served.stop()
    for account, provider in ACCOUNTS.items():
        assert log.count(f"sweeper recovered payment {_order_id(account)!r}") == 1, log
        assert log.count(f"sweeper recovered refund {_refund_id(account)!r}") == 1, log
        assert log.count(f"subs: {account} payment/succeeded order {_order_id(account)}") == 1, log
        assert log.count(f"subs: {account} refund/succeeded order ") == 1, log
        assert _metric(metrics, "paynotify_recovered_total", provider=provider, account=account) == 2, metrics

    config = str(walk.config)
    events = _json_lines(capsys, "events", "--config", config, "list", "--json")
    assert sorted((e["account"], e["kind"], e["state"]) for e in events) == sorted(
        (a, kind, "done") for a in ACCOUNTS for kind in ("payment", "refund")
    )
    expectations = _json_lines(capsys, "expectations", "list", "--json", "--config", config)
    assert sorted(
        (x["account"], x["refund_id"] or "-", x["state"], x["outcome"], x["attempts"]) for x in expectations
    ) == sorted((a, r, "settled", "succeeded", 1) for a in ACCOUNTS for r in ("-", _refund_id(a)))


def _forged_provider_side(relative: str) -> Callable[[Path], None]:
    """Replace the provider's side of a key init wrote: the emulator then signs with a key the
    account does not trust (a forger's)."""

    def forge(directory: Path) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (directory / relative).write_bytes(pem)

    return forge


@pytest.mark.parametrize(
    ("account", "provider_side"),
    [
        ("shop-alipay", "keys/provider-side/alipay_private_key.pem"),
        ("shop-wechat-v3", "keys/provider-side/wechatpay_v3_private_key.pem"),
        ("shop-unionpay", "keys/provider-side/unionpay_signing_key.pem"),
    ],
)
def test_an_emulator_signing_with_another_key_is_refused_and_nothing_is_recovered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], account: str, provider_side: str
) -> None:
    order = _order_id(account)
    with (
        _walk(tmp_path, before=_forged_provider_side(provider_side)) as walk,
        httpx.Client(timeout=10) as client,
    ):
        created = client.post(
            f"{walk.emulator}/_emulator/{account}/orders",
            json={"order_id": order, "amount": "88.88", "notify": False},
        )
        assert created.status_code == 201, created.text
        at = created.json()["at"]
        expect = ["expect", account, order, "--amount", "88.88", "--until", "1h", "--at", at,
                  "--config", str(walk.config)]  # fmt: skip
        assert main(expect) == 0
        walk.wait_for(f"query of order {order!r} on account {account!r}")
        walk.wait_for("refused, the answer does not verify")
        metrics = client.get(f"{walk.ops}/metrics").text
        log = walk.served.stop()
    provider = ACCOUNTS[account]
    assert (
        _metric(
            metrics, "paynotify_queries_total", provider=provider, account=account, outcome="query_refused"
        )
        >= 1
    )
    assert _metric(metrics, "paynotify_recovered_total", provider=provider, account=account) == 0
    assert "sweeper recovered" not in log
    assert f"payment/succeeded order {order}" not in log
    config = str(walk.config)
    capsys.readouterr()
    assert main(["events", "--config", config, "list", "--json"]) == 0
    assert capsys.readouterr().out == ""
    (expectation,) = _json_lines(capsys, "expectations", "list", "--json", "--config", config)
    assert (expectation["state"], expectation["attempts"]) == ("open", 1)
