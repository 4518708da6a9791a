"""Sign-string folds: UnionPay signs `k=v` pairs joined by `&` with nothing escaped, so the signed
bytes of a genuine message can be cut into fields another way and keep its signature: a value
swallowing the fields after it (`signPubKeyCert` ending in `&traceNo=...`), a name taking the start
of its value (`accNo=ORRS...`), a value split at an `&` inside one of its groups.

Every such cut of genuine messages (UnionPay's own vectors and ones signed by a throwaway chain) is
made here, and each must be refused: InvalidContent (recorded `rejected`, acknowledged), a
VerificationError, or (a name no form can carry) a malformed form. None is ever delivered, so none
reaches a subscriber with fields lost or an amount gone; the genuine message still is, whole."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from _unionpay import (
    MER_ID,
    PINNED,
    VECTOR_MER_ID,
    account,
    join,
    notify,
    pairs,
    parse,
    txt_as_form,
    vector,
    vector_account,
)
from paynotify_unionpay import UnionPaySettings
from paynotify_unionpay._signature import sign_string
from paynotify_unionpay.testing import query_id

from paynotify import (
    Account,
    EventState,
    InvalidContent,
    MalformedNotification,
    Notifier,
    PaymentResult,
    VerificationError,
)

Pairs = list[tuple[bytes, bytes]]
_FORM_NAME = re.compile(rb"[\x21-\x7e]+")


@dataclass(frozen=True)
class Genuine:
    label: str
    body: bytes
    acct: Account[UnionPaySettings]

    @property
    def signed(self) -> Pairs:
        """The signed fields in sign-string order (all but `signature`)."""
        return sorted((k, v) for k, v in pairs(self.body) if k != b"signature")

    @property
    def signature(self) -> bytes:
        return dict(pairs(self.body))[b"signature"]


def genuine_messages() -> list[Genuine]:
    orig = query_id(MER_ID, "order20260101001")
    grouped = {"reqReserved": "{a=1&b=2}", "reserved": "[x=1&y=2]", "respMsg": "成功[0000000]"}
    return [
        Genuine("vector consume", vector("ys_open_callback_consume.form"), vector_account()),
        Genuine("vector query", txt_as_form("ys_query_response_consume.txt"), vector_account()),
        Genuine("vector refund 04", txt_as_form("ys_refund_response.txt"), vector_account()),
        Genuine("vector undo 31", txt_as_form("ys_cancel_response.txt"), vector_account()),
        Genuine("consume with groups", notify(**grouped), account()),
        Genuine(
            "refund 04", notify(order_id="refund20260101001", txn_type="04", orig_qry_id=orig), account()
        ),
        Genuine(
            "5.0.0 gbk", notify(version="5.0.0", encoding="gbk", **{**grouped, "respMsg": "成功"}), account()
        ),
    ]


MESSAGES = genuine_messages()


def _segments(signed: Pairs) -> list[bytes]:
    return [k + b"=" + v for k, v in signed]


def cuts(signed: Pairs, seed: int) -> Iterator[tuple[str, Pairs]]:
    """Other partitions of the sign string of `signed` into `name=value` fields (each cut at an
    `=` of its segment), with a label saying what moved:

    - fold i..j at any `=`: fields i to j as one (the first `=`: field i's value swallowed the
      others; a later one: its name took the start of what follows), for every i <= j;
    - split at an `&` inside a value (the inside of a group);
    - two of the moves above at once, a seeded sample.
    """
    segments = _segments(signed)
    singles: list[tuple[str, int, int, int]] = []  # (label, first, last, which `=`)
    for first in range(len(segments)):
        for last in range(first, len(segments)):
            merged = b"&".join(segments[first : last + 1])
            for which in range(merged.count(b"=")):
                if first == last and which == 0:
                    continue  # the genuine cut
                name = signed[first][0].decode()
                singles.append((f"{name}+{last - first} at '='#{which}", first, last, which))
    for label, first, last, which in singles:
        yield label, _rebuild(segments, [(first, last, which)])
    for index, segment in enumerate(segments):
        value_at = segment.index(b"=") + 1
        for position in [m.start() for m in re.finditer(rb"&", segment) if m.start() > value_at]:
            head, tail = segment[:position], segment[position + 1 :]
            if b"=" in tail:
                split = [*segments[:index], head, tail, *segments[index + 1 :]]
                yield f"split {signed[index][0].decode()} at {position}", _as_pairs(split)
    rng = random.Random(seed)
    for _ in range(150):
        one, two = rng.sample(singles, 2)
        if one[2] < two[1] or two[2] < one[1]:
            yield f"{one[0]} and {two[0]}", _rebuild(segments, sorted([one[1:], two[1:]]))


def _rebuild(segments: list[bytes], moves: list[tuple[int, int, int]]) -> Pairs:
    out: list[bytes] = []
    index = 0
    for first, last, which in moves:
        out.extend(segments[index:first])
        merged = b"&".join(segments[first : last + 1])
        at = [m.start() for m in re.finditer(rb"=", merged)][which]
        out.append(merged[:at] + b"\x00" + merged[at + 1 :])  # NUL marks the chosen `=`
        index = last + 1
    out.extend(segments[index:])
    return _as_pairs(out)


def _as_pairs(segments: list[bytes]) -> Pairs:
    result = []
    for segment in segments:
        marked = b"\x00" if b"\x00" in segment else b"="
        name, _, value = segment.partition(marked)
        result.append((name, value))
    return result


def _body(fields: Pairs, signature: bytes) -> bytes:
    return join([*fields, (b"signature", signature)])


def _form_refuses(fields: Pairs) -> bool:
    """What the form decoder refuses before verifying: a name that is not printable ASCII or comes
    twice, no `encoding` field (it was swallowed) or one naming no charset UnionPay uses."""
    names = [name for name, _ in fields]
    encoding = dict(fields).get(b"encoding", b"").strip().lower()
    return (
        len(set(names)) != len(names)
        or not all(_FORM_NAME.fullmatch(n) for n in names)
        or encoding not in (b"utf-8", b"gbk")
    )


def _same_sign_string(fields: Pairs, genuine: Genuine) -> bool:
    return sign_string(dict(fields)) == sign_string(dict(genuine.signed))


@pytest.mark.parametrize("genuine", MESSAGES, ids=[m.label for m in MESSAGES])
def test_every_cut_of_a_genuine_sign_string_is_refused(genuine: Genuine) -> None:
    assert parse(genuine.body, genuine.acct).event_id  # the genuine cut is accepted
    folds = 0
    seen: dict[str, int] = {}
    for label, fields in cuts(genuine.signed, seed=len(genuine.body)):
        body = _body(fields, genuine.signature)
        kept = _same_sign_string(fields, genuine)
        folds += kept  # the genuine signature still covers this cut: it verifies
        with pytest.raises((InvalidContent, VerificationError, MalformedNotification)) as info:
            parse(body, genuine.acct)
        error = info.value
        seen[type(error).__name__] = seen.get(type(error).__name__, 0) + 1
        if isinstance(error, InvalidContent):
            assert kept, (label, error.message)  # refused as content only once verified
            assert error.message.startswith("verified, but "), (label, error.message)
            # Recorded as it was cut: the fields as received, for an operator to see.
            assert set(error.raw) == {k.decode() for k, _ in fields} | {"signature"}
        elif not isinstance(error, VerificationError):
            assert _form_refuses(fields), (label, error.message)
        elif kept:
            # The genuine signature covers this cut, so what refused it is a field verification
            # reads first: signMethod, version, certId or signPubKeyCert swallowed or holding more
            # (one PEM certificate exactly), never the signature.
            assert "does not verify" not in error.message, (label, error.message)
            verification_fields = (b"signMethod", b"version", b"certId", b"signPubKeyCert")
            assert any(dict(fields).get(f) != dict(genuine.signed).get(f) for f in verification_fields)
    assert folds >= 200, folds  # the harness makes real folds, not just broken signatures
    assert seen.get("InvalidContent", 0) >= 10, seen


@pytest.mark.parametrize("genuine", MESSAGES[:1], ids=[MESSAGES[0].label])
def test_the_probe_s_fold_swallowing_trace_no_is_refused(genuine: Genuine) -> None:
    # issue 25's finding: signPubKeyCert followed by `&traceNo=...` still parsed and verified, and
    # the result's raw had lost traceNo and traceTime; on the return channel txnAmt went too.
    fields = dict(genuine.signed)
    cert = fields[b"signPubKeyCert"]
    for swallowed in ([b"traceNo", b"traceTime"], [b"traceNo", b"traceTime", b"txnAmt"]):
        value = cert + b"".join(b"&" + name + b"=" + fields[name] for name in swallowed)
        folded = [
            (k, value if k == b"signPubKeyCert" else v) for k, v in genuine.signed if k not in swallowed
        ]
        assert _same_sign_string(folded, genuine)
        for channel in ("notify", "return"):
            with pytest.raises(VerificationError, match="not exactly one PEM certificate"):
                parse(_body(folded, genuine.signature), genuine.acct, channel=channel)


async def test_no_cut_is_ever_delivered_and_the_genuine_message_is_whole() -> None:
    genuine = MESSAGES[0]
    notifier = Notifier("memory://")
    notifier.add_account("sandbox", PINNED, mer_id=VECTOR_MER_ID, environment="test")
    delivered: list[PaymentResult] = []
    pages: list[PaymentResult] = []
    notifier.subscribe(delivered.append)

    @notifier.on_return
    def page(result: PaymentResult) -> str:
        pages.append(result)
        return "https://shop.example/done"

    headers = {"content-type": "application/x-www-form-urlencoded"}
    invalid: set[bytes] = set()
    statuses: dict[int, int] = {}
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _, fields in cuts(genuine.signed, seed=1):
            body = _body(fields, genuine.signature)
            response = await client.post("/sandbox/notify", content=body, headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                assert response.content == b"ok"
                invalid.add(body)
            else:
                assert (response.status_code, response.content) in {(401, b"fail"), (400, b"fail")}
            back = await client.post("/sandbox/return", content=body, headers=headers)
            assert back.status_code == 400  # the failure page, never the merchant's
        assert delivered == []
        assert pages == []
        # Each cut the signature covers and the structure refuses is on record, as rejected.
        rejected = await notifier.store.find(states=[EventState.REJECTED], limit=10_000)
        assert len(rejected) == len(invalid) >= 100
        assert all(r.last_error and "verified, but " in r.last_error for r in rejected)
        assert await notifier.store.find(states=[s for s in EventState if s is not EventState.REJECTED]) == []
        response = await client.post("/sandbox/notify", content=genuine.body, headers=headers)
    await notifier.aclose()
    assert (response.status_code, response.content) == (200, b"ok")
    (paid,) = delivered
    assert str(paid.amount) == "0.01"
    assert paid.raw == json.loads(vector("ys_open_callback_consume.fields.json"))
    assert set(statuses) <= {200, 400, 401}, statuses
