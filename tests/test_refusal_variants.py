"""Refused content never grows the store or the log with its byte-variants (issue 25, items 2, 7).

A provider signs the decoded fields, so re-spelling a signed message keeps it verifying: letters
percent-encoded in a form (`%61` for `a`), XML whitespace and CDATA, a WeChat v2 sign in lower
case. Every paying buyer holds a signed Alipay sync return; posted to notify it verifies. Each
test posts 1,000 spellings of one genuinely signed message (throwaway keys) and counts rows.
"""

from __future__ import annotations

import html
import logging
import random
import re
from pathlib import Path
from typing import Any

import pytest
from _store_backends import isolated_url
from _unionpay import chain
from _wechatpay_v2 import APPID, MCH_ID
from paynotify_alipay.testing import SELLER_ID, generate_key, make_notify, make_return, public_key_pem
from paynotify_unionpay.testing import MER_ID
from paynotify_unionpay.testing import make_notify as unionpay_notify
from paynotify_wechatpay._xml import parse_flat_xml
from paynotify_wechatpay.testing import generate_api_key, make_v2_payment_notify

from paynotify import InboundRequest, Notifier, Observer, Outcome
from paynotify._sampling import Sampler

VARIANTS = 1000
APP_ID = "2021004100000000"
KEY = generate_key()
V2_KEY = generate_api_key()
FORM = {"content-type": "application/x-www-form-urlencoded"}


class Outcomes(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple[Outcome, str]] = []

    def notification(
        self, provider: str, account: str, outcome: Outcome, seconds: float, *, channel: str
    ) -> None:
        self.seen.append((outcome, channel))


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return isolated_url(request.param, tmp_path)


def percent_variants(form: bytes, count: int, seed: int = 25) -> list[bytes]:
    """`count` distinct spellings of `form`: letters and digits of its values percent-encoded at
    random, in either hex case. Each decodes to the same fields."""
    rng = random.Random(seed)
    spellings = {form}
    while len(spellings) < count + 1:
        pairs = []
        for pair in form.split(b"&"):
            name, _, value = pair.partition(b"=")
            spelled = "".join(
                (f"%{ord(c):02x}" if rng.random() < 0.5 else f"%{ord(c):02X}")
                if c.isalnum() and rng.random() < 0.1
                else c
                for c in re.findall(r"%[0-9A-Fa-f]{2}|.", value.decode("ascii"))  # escapes kept whole
            )
            pairs.append(name + b"=" + spelled.encode("ascii"))
        spellings.add(b"&".join(pairs))
    spellings.discard(form)
    return sorted(spellings)[:count]


def xml_variants(xml: bytes, count: int, seed: int = 25) -> list[bytes]:
    """`count` distinct spellings of a flat WeChat Pay v2 document: whitespace between elements,
    each value in CDATA or as escaped text, the sign in either case. Each has the same fields."""
    fields = parse_flat_xml(xml).items()
    rng = random.Random(seed)
    spellings: set[bytes] = set()
    while len(spellings) < count:
        parts = []
        for name, value in fields:
            if name == "sign":
                value = "".join(c.lower() if rng.random() < 0.5 else c for c in value)
            text = f"<![CDATA[{value}]]>" if rng.random() < 0.5 else html.escape(value)
            parts.append(rng.choice(["", "\n", " ", "\t", "\r\n  "]) + f"<{name}>{text}</{name}>")
        spellings.add(("<xml>" + "".join(parts) + rng.choice(["", "\n"]) + "</xml>").encode())
    return sorted(spellings)


async def rows(n: Notifier) -> int:
    return sum((await n.store.count()).values())


def alipay(store_url: str) -> tuple[Notifier, Outcomes]:
    n = Notifier(store_url)
    n.add_account("shop", "alipay", app_id=APP_ID, alipay_public_key=public_key_pem(KEY), seller_id=SELLER_ID)
    outcomes = Outcomes()
    n.observe(outcomes)
    return n, outcomes


async def test_a_signed_return_posted_to_notify_in_1000_spellings_stores_nothing(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    n, outcomes = alipay(store_url)
    query = make_return(KEY, app_id=APP_ID, out_trade_no="o-1")
    # Genuine: the return channel takes it, so every spelling below is signed content.
    assert (await n.handle("shop", InboundRequest("GET", "return", {}, query, b""))).status == 200
    with caplog.at_level(logging.WARNING, logger="paynotify"):
        for body in percent_variants(query, VARIANTS):
            reply = await n.handle("shop", InboundRequest("POST", "notify", FORM, b"", body))
            assert reply.body == b"fail"  # nothing was recorded: not acknowledged
    assert await rows(n) == 0
    assert outcomes.seen[1:] == [(Outcome.MISPLACED, "notify")] * VARIANTS
    # The log: the first 10 of the minute; the rest are a count, written when the minute is over.
    assert sum("not an async notification" in r.getMessage() for r in caplog.records) == 10
    await n.aclose()


async def test_verified_content_out_of_shape_in_1000_spellings_is_one_rejected_row(store_url: str) -> None:
    n, outcomes = alipay(store_url)
    body = make_notify(KEY, app_id=APP_ID, out_trade_no="o-1", total_amount="1.001")
    for variant in [body, *percent_variants(body, VARIANTS - 1)]:
        reply = await n.handle("shop", InboundRequest("POST", "notify", FORM, b"", variant))
        assert reply.body == b"success"  # on record: acknowledged
    assert await rows(n) == 1
    assert {outcome for outcome, _ in outcomes.seen} == {Outcome.REJECTED_CONTENT}
    (event,) = await n.store.find()
    assert event.unhandled().raw["total_amount"] == "1.001"  # the decoded content, for the operator
    await n.aclose()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_wechat_v2_xml_spellings_and_sign_cases_are_one_row(backend: str, tmp_path: Path) -> None:
    n = Notifier(isolated_url(backend, tmp_path))
    n.add_account("shop", "wechatpay-v2", appid=APPID, mch_id=MCH_ID, api_key=V2_KEY)
    body = make_v2_payment_notify(V2_KEY, appid=APPID, mch_id=MCH_ID, out_trade_no="o-1", result_code="MAYBE")
    for variant in xml_variants(body, VARIANTS):
        reply = await n.handle("shop", InboundRequest("POST", "notify", {}, b"", variant))
        assert b"<return_code><![CDATA[SUCCESS]]>" in reply.body
    assert await rows(n) == 1
    await n.aclose()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_unionpay_percent_spellings_are_one_rejected_row(backend: str, tmp_path: Path) -> None:
    n = Notifier(isolated_url(backend, tmp_path))
    n.add_account("shop", "unionpay", mer_id=MER_ID, **chain().account_settings())
    body = unionpay_notify(chain(), mer_id=MER_ID, order_id="order-1", txn_amt="88.88")
    for variant in [body, *percent_variants(body, VARIANTS - 1)]:
        assert (await n.handle("shop", InboundRequest("POST", "notify", FORM, b"", variant))).body == b"ok"
    assert await rows(n) == 1
    await n.aclose()


async def test_a_forged_return_counts_as_refused_signature_on_the_return_channel() -> None:
    n, outcomes = alipay("memory://")
    forged = make_return(generate_key(), app_id=APP_ID, out_trade_no="o-1")
    reply = await n.handle("shop", InboundRequest("GET", "return", {}, forged, b""))
    assert reply.status == 400
    assert reply.content_type == "text/html; charset=utf-8"  # still a page for the buyer
    malformed = await n.handle("shop", InboundRequest("GET", "return", {}, b"%zz", b""))
    assert malformed.status == 400
    assert outcomes.seen == [(Outcome.REFUSED_SIGNATURE, "return"), (Outcome.MALFORMED, "return")]
    await n.aclose()


async def test_refused_requests_are_logged_first_ten_a_minute_then_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    n, _ = alipay("memory://")
    now = [0.0]
    sampler = n.pipeline.refusals
    n.pipeline.refusals = Sampler(sampler.report, limit=sampler.limit, window=60.0, clock=lambda: now[0])
    forged = make_return(generate_key(), app_id=APP_ID, out_trade_no="o-1")
    with caplog.at_level(logging.WARNING, logger="paynotify"):
        for _ in range(25):
            await n.handle("shop", InboundRequest("GET", "return", {}, forged, b""))
        assert len(caplog.records) == 10
        now[0] = 61.0
        await n.handle("shop", InboundRequest("GET", "return", {}, forged, b""))
    summary, fresh = caplog.records[10:]
    assert "15 more refused_signature warnings on account 'shop' (return channel)" in summary.getMessage()
    assert summary.__dict__["outcome"] == "refused_signature"
    assert "refused alipay return" in fresh.getMessage()  # a new minute: logged again
    await n.aclose()


def test_the_sampler_keeps_the_first_n_of_each_key_per_window_and_reports_the_rest() -> None:
    now = [0.0]
    reports: list[tuple[Any, int, float]] = []
    sampler = Sampler(lambda key, count, window: reports.append((key, count, window)), limit=3, window=60.0,
                      clock=lambda: now[0])  # fmt: skip
    assert [sampler.allow("a") for _ in range(5)] == [True, True, True, False, False]
    now[0] = 30.0
    assert [sampler.allow("b") for _ in range(4)] == [True, True, True, False]  # a key of its own
    assert sampler.allow("a") is False
    assert reports == []
    now[0] = 60.0  # a's window is over: its count is reported, and it starts again
    assert sampler.allow("b") is False
    assert reports == [("a", 3, 60.0)]
    assert sampler.allow("a") is True
    now[0] = 90.0
    assert sampler.allow("c") is True
    assert reports == [("a", 3, 60.0), ("b", 2, 60.0)]
    now[0] = 1000.0
    assert sampler.allow("c") is True  # a window without suppressed lines reports nothing
    assert reports == [("a", 3, 60.0), ("b", 2, 60.0)]


async def test_the_refused_signatures_alert_sees_forged_returns() -> None:
    from prometheus_client import CollectorRegistry

    from paynotify.ops import Instrumentation

    n, _ = alipay("memory://")
    registry = CollectorRegistry()
    Instrumentation(registry=registry, tracing=False).attach(n)
    forged = make_return(generate_key(), app_id=APP_ID, out_trade_no="o-1")
    await n.handle("shop", InboundRequest("GET", "return", {}, forged, b""))
    labels = {"provider": "alipay", "account": "shop", "outcome": "refused_signature"}
    # docs/operations.md's PaynotifyRefusedSignatures sums this outcome by provider and account.
    assert registry.get_sample_value("paynotify_notifications_total", {**labels, "channel": "return"}) == 1
    await n.aclose()


def v2_refund_variants(body: bytes, count: int) -> list[bytes]:
    """Spellings of an unsigned v2 refund notification: whitespace, and outer fields nobody signs
    (a nonce_str of its own, an element added)."""
    spellings = []
    for i in range(count):
        spelled = re.sub(rb"<nonce_str>.*?</nonce_str>", f"<nonce_str>n{i}</nonce_str>".encode(), body)
        spelled = spelled.replace(
            b"</xml>", f"{' ' * (i % 3)}<extra_{i % 5}>{i}</extra_{i % 5}></xml>".encode()
        )
        spellings.append(spelled)
    return spellings


async def test_wechat_v2_refunds_out_of_shape_or_contradicted_are_one_row_each() -> None:
    from paynotify_wechatpay.testing import WeChatPayV2Emulator, make_v2_refund_notify

    from paynotify.recovery import EmulatorTransport

    emu = WeChatPayV2Emulator()
    emu.pay("order-1", total_fee=10000)
    n = Notifier("memory://", api_transport=EmulatorTransport({"wechatpay-v2.emulator": emu}))
    settings = emu.account_settings()
    n.add_account("shop", "wechatpay-v2", **settings)
    ids = {"appid": settings["appid"], "mch_id": settings["mch_id"], "out_trade_no": "order-1"}
    odd = make_v2_refund_notify(settings["api_key"], **ids, out_refund_no="refund-9", total_fee=10000,
                                refund_fee=100, refund_status="MAYBE")  # fmt: skip
    emu.refund("refund-1", "order-1", refund_fee=1000)
    claimed = emu.notification(refund="refund-1")
    emu.refund("refund-1", "order-1", refund_fee=100)  # WeChat Pay has 1.00: the claim is contradicted
    async with n:
        for body in v2_refund_variants(odd, 50):
            assert (
                b"SUCCESS" in (await n.handle("shop", InboundRequest("POST", "notify", {}, b"", body))).body
            )
        assert await rows(n) == 1
        for body in v2_refund_variants(claimed, 20):
            assert (
                b"SUCCESS" in (await n.handle("shop", InboundRequest("POST", "notify", {}, b"", body))).body
            )
        assert await rows(n) == 2
