"""What a verified UnionPay message becomes, end to end through the ASGI route and the store: of a
kind paynotify maps, delivered; of a known kind but out of shape, recorded `rejected` and answered
200 `ok`; of a kind it does not map, recorded `unhandled` (typed `txnType/txnSubType`) and answered
200 `ok`. Nothing verified is answered with a failure because of its content, except while the store
cannot take the record (then UnionPay must resend). Every message is genuinely signed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _unionpay import MER_ID, ORDER_ID, chain, notify, parse, result
from paynotify_unionpay.testing import query_id

from paynotify import (
    EventState,
    InvalidContent,
    MemoryStore,
    Notifier,
    PaymentResult,
    StoreError,
    UnhandledEvent,
)

FORM = {"content-type": "application/x-www-form-urlencoded"}
ORIG = query_id(MER_ID, ORDER_ID)


class _Store(MemoryStore):
    """The memory store, with `record` failing while `down` is set (as an unreachable database)."""

    down = False

    async def record(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreError("store unreachable")
        return await super().record(*args, **kwargs)


@pytest.fixture
def store() -> _Store:
    return _Store()


@pytest.fixture
def notifier(store: _Store) -> Notifier:
    n = Notifier(store)
    n.add_account("shop", "unionpay", mer_id=MER_ID, **chain().account_settings())
    return n


@pytest.fixture
def delivered(notifier: Notifier) -> list[PaymentResult]:
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    return seen


@pytest.fixture
async def client(notifier: Notifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://paynotify.test") as c:
        yield c
    await notifier.aclose()


async def post(client: httpx.AsyncClient, body: bytes, channel: str = "notify") -> httpx.Response:
    return await client.post(f"/shop/{channel}", content=body, headers=FORM)


OUT_OF_SHAPE = [
    ("orderId", {"order_id": "order-2026-01"}, "orderId 'order-2026-01' is not 8-40 letters or digits"),
    ("txnAmt", {"txn_amt": "88.88"}, "txnAmt '88.88' is not fen"),
    ("queryId", {"queryId": "7822090813220606740/"}, "queryId '7822090813220606740/' is not 1-32 letters"),
    ("txnTime", {"txnTime": "20261323093015"}, "txnTime '20261323093015' is not a yyyyMMddHHmmss time"),
    ("traceNo", {"traceNo": "12345"}, "traceNo '12345' is not 6 digits"),
    ("currency", {"currencyCode": "840"}, "currencyCode 840 is not supported"),
    ("missing", {"queryId": None}, "queryId is missing"),
    ("refund", {"txn_type": "04", "orig_qry_id": "a c"}, "origQryId 'a c' is not 1-32 letters or digits"),
    ("undo", {"txn_type": "31", "orig_qry_id": None}, "origQryId is missing"),
    ("grouping", {"reqReserved": "a=1&b=2"}, "reqReserved 'a=1&b=2' holds '&' outside a {...}"),
    ("5.0.0 gbk", {"version": "5.0.0", "encoding": "gbk", "respMsg": "成功", "txn_amt": "1e3"}, "txnAmt"),
]


@pytest.mark.parametrize(
    ("fields", "reason"), [c[1:] for c in OUT_OF_SHAPE], ids=[c[0] for c in OUT_OF_SHAPE]
)
async def test_a_known_kind_out_of_shape_is_recorded_rejected_and_acknowledged(
    notifier: Notifier,
    client: httpx.AsyncClient,
    delivered: list[PaymentResult],
    fields: dict[str, str | None],
    reason: str,
) -> None:
    body = notify(**fields)
    for _ in range(2):  # and its resend: acknowledged again, on record once
        response = await post(client, body)
        assert (response.status_code, response.content) == (200, b"ok")
    assert delivered == []
    (record,) = await notifier.store.find()
    assert record.state is EventState.REJECTED
    assert record.last_error is not None
    assert reason in record.last_error
    kept = record.unhandled()
    assert (kept.provider, kept.account, kept.event_type) == ("unionpay", "shop", "INVALID")
    assert kept.raw["signature"]  # every verified field, as received
    assert kept.raw["merId"] == MER_ID


async def test_the_rejected_record_names_the_event_a_well_formed_copy_would_be(
    notifier: Notifier, client: httpx.AsyncClient
) -> None:
    # The ids have their shapes, the amount has not: an operator finds the genuine event by this id.
    assert (await post(client, notify(txn_amt="8.88"))).status_code == 200
    (record,) = await notifier.store.find(states=[EventState.REJECTED])
    assert record.unhandled().raw["paynotify_event_id"] == result(notify()).event_id
    # An id out of shape: no event_id can be told.
    assert (await post(client, notify(order_id="order_2026_01"))).status_code == 200
    records = await notifier.store.find(states=[EventState.REJECTED])
    assert len(records) == 2
    assert sum("paynotify_event_id" in r.unhandled().raw for r in records) == 1


async def test_verified_out_of_shape_is_not_acknowledged_while_the_store_is_down(
    store: _Store, client: httpx.AsyncClient
) -> None:
    store.down = True
    response = await post(client, notify(order_id="order-2026-01"))
    assert (response.status_code, response.content) == (500, b"fail")  # UnionPay resends
    store.down = False
    assert (await post(client, notify(order_id="order-2026-01"))).status_code == 200
    assert len(await store.find(states=[EventState.REJECTED])) == 1


UNKNOWN_KINDS = [
    ("79", "00", {"bizType": "000902"}),  # token open (开通)
    ("00", "00", {"bizType": "000000"}),  # a query answer posted to backUrl
    ("02", "01", {}),  # pre-authorisation
    ("03", "00", {}),  # pre-authorisation completion
    ("32", "00", {}),  # pre-authorisation undo
    ("11", "02", {"bizType": "000501"}),  # collection (代收)
    ("12", "00", {"bizType": "000401"}),  # payout (代付)
]


@pytest.mark.parametrize(
    ("txn_type", "sub_type", "extra"), UNKNOWN_KINDS, ids=[f"{t}/{s}" for t, s, _ in UNKNOWN_KINDS]
)
async def test_an_unknown_kind_is_recorded_unhandled_typed_and_acknowledged(
    notifier: Notifier,
    client: httpx.AsyncClient,
    delivered: list[PaymentResult],
    txn_type: str,
    sub_type: str,
    extra: dict[str, str],
) -> None:
    offered: list[UnhandledEvent] = []
    notifier.on_unhandled(offered.append)
    body = notify(txn_type=txn_type, txnSubType=sub_type, **extra)
    for _ in range(2):
        response = await post(client, body)
        assert (response.status_code, response.content) == (200, b"ok")
    assert delivered == []
    (record,) = await notifier.store.find()
    assert record.state is EventState.UNHANDLED
    event = record.unhandled()
    assert event.event_type == f"{txn_type}/{sub_type}"
    assert event.key_id == chain().cert_id
    assert event.raw["txnType"] == txn_type
    assert [e.event_id for e in offered] == [event.event_id] * 2  # every copy, as documented


async def test_an_unknown_kind_is_unhandled_whatever_its_other_fields_hold(
    notifier: Notifier, client: httpx.AsyncClient
) -> None:
    # Their meaning belongs to a kind paynotify does not read: only the structure is held to.
    response = await post(client, notify(txn_type="79", txn_amt="1.00", orderId="x-1", queryId=None))
    assert (response.status_code, response.content) == (200, b"ok")
    (record,) = await notifier.store.find()
    assert record.state is EventState.UNHANDLED


async def test_an_unknown_kind_whose_fields_could_be_a_fold_is_rejected(
    notifier: Notifier, client: httpx.AsyncClient
) -> None:
    response = await post(client, notify(txn_type="79", reqReserved="{open"))
    assert (response.status_code, response.content) == (200, b"ok")
    (record,) = await notifier.store.find()
    assert record.state is EventState.REJECTED
    assert record.last_error is not None
    assert "leaves one open" in record.last_error


async def test_a_swallowed_txn_type_is_rejected_not_guessed(
    notifier: Notifier, client: httpx.AsyncClient
) -> None:
    response = await post(client, notify(txnType=None))
    assert (response.status_code, response.content) == (200, b"ok")
    (record,) = await notifier.store.find()
    assert record.state is EventState.REJECTED
    assert "txnType is missing" in (record.last_error or "")


async def test_a_front_return_out_of_shape_gets_the_failure_page_and_no_record(
    notifier: Notifier, client: httpx.AsyncClient
) -> None:
    pages: list[PaymentResult] = []

    @notifier.on_return
    def page(result: PaymentResult) -> str:
        pages.append(result)
        return "https://shop.example/done"

    response = await post(client, notify(order_id="order-2026-01"), channel="return")
    assert response.status_code == 400
    assert response.content != b"ok"
    assert pages == []
    assert await notifier.store.find() == []


def test_invalid_content_carries_what_the_pipeline_records() -> None:
    with pytest.raises(InvalidContent) as info:
        parse(notify(txn_type="04", orig_qry_id=ORIG, order_id="refund20260101001", txn_amt="-5"))
    error = info.value
    assert error.account == "shop"
    assert error.raw["txnAmt"] == "-5"
    assert (
        error.event_id
        == result(notify(txn_type="04", orig_qry_id=ORIG, order_id="refund20260101001")).event_id
    )
