"""Where the microseconds of a WeChat Pay v3 notification go: each stage of paynotify's path timed
on its own, with the provider's own functions, over the same N distinct signed notifications; then
the same stages as they run inside the whole pipeline (timers around `parse` and `handle`).

    python -m bench.stages [--n 300] [--rounds 15] [--json bench/results/stages.json]

A stage timed alone runs hot (its code and data stay in the caches); inside the pipeline it shares
the caches with everything else a notification does, and costs more. Both are shown: the sum of
the stages alone is a lower bound, the in-pipeline split is what a notification pays.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from paynotify_wechatpay import _v3_mapping
from paynotify_wechatpay._json import loads as strict_loads
from paynotify_wechatpay._v3_crypto import decrypt_resource
from paynotify_wechatpay._v3_envelope import Envelope
from paynotify_wechatpay._v3_mapping import event_kind, to_result
from paynotify_wechatpay._v3_signature import SignedHeaders, _decode, message, verify

from bench._common import Contender, asgi_batch, interleave, machine, new_loop, write_json
from bench._fixtures import WeChatV3Keys, as_request, lower_headers, wechat_v3_notes
from bench.pipeline import HANDLE, PARSE, PIPELINE, _v3_ok, paynotify_contenders
from paynotify import Notifier, PaymentResult
from paynotify._asgi import NotificationApp
from paynotify._http import InboundRequest, Reply
from paynotify._pipeline import Pipeline
from paynotify._stores.memory import MemoryStore


def _stages(n: int) -> tuple[list[tuple[str, Callable[[], None]]], list[Any]]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    keys = WeChatV3Keys.generate()
    requests = [as_request(h, b) for h, b in wechat_v3_notes(keys, n, "stages")]
    notifier = Notifier("memory://")
    account = notifier.add_account("shop", "wechatpay-v3", **keys.settings())
    settings = account.settings
    provider = account.provider
    inbound = [InboundRequest("POST", "notify", lower_headers(r), b"", r[1]) for r in requests]
    signed = [SignedHeaders.from_headers(i.headers) for i in inbound]
    keyring = settings.keyring
    now = time.time()
    trusted = [keyring.find(s.serial) for s in signed]
    raw_sigs = [_decode(s.signature, k) for s, k in zip(signed, trusted, strict=True)]  # type: ignore[arg-type]
    messages = [message(s.timestamp, s.nonce, i.body) for s, i in zip(signed, inbound, strict=True)]
    envelopes = [Envelope.parse(i.body) for i in inbound]
    aead = settings._loaded("_aead")
    plaintexts = [decrypt_resource(e.resource, aead) for e in envelopes]
    resources = [strict_loads(p.decode(), "resource") for p in plaintexts]
    sealed = [binascii.a2b_base64(e.resource["ciphertext"]) for e in envelopes]
    nonces = [e.resource["nonce"].encode() for e in envelopes]
    ads = [e.resource.get("associated_data", "").encode() for e in envelopes]
    results = [provider.parse(i, account) for i in inbound]
    fields = [dict(r.__dict__) for r in results]
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    tolerance = settings.timestamp_tolerance

    def each(fn: Callable[[int], object]) -> Callable[[], None]:
        def run() -> None:
            for i in range(n):
                fn(i)

        return run

    stages = [
        ("headers: SignedHeaders.from_headers",
         each(lambda i: SignedHeaders.from_headers(inbound[i].headers))),
        ("verify: checks, window, base64, RSA (verify())",
         each(lambda i: verify(signed[i], inbound[i].body, keyring, now=now, tolerance=tolerance))),
        ("  of which RSA PKCS#1 v1.5 SHA-256 alone",
         each(lambda i: trusted[i].key.verify(raw_sigs[i], messages[i], pkcs1, sha256))),  # type: ignore[union-attr]
        ("envelope: strict JSON + shape (Envelope.parse)", each(lambda i: Envelope.parse(inbound[i].body))),
        ("  json.loads of the body alone (no strictness)", each(lambda i: json.loads(inbound[i].body))),
        ("decrypt: base64 + AES-256-GCM", each(lambda i: decrypt_resource(envelopes[i].resource, aead))),
        ("  of which AESGCM.decrypt alone", each(lambda i: aead.decrypt(nonces[i], sealed[i], ads[i]))),
        ("resource JSON: strict", each(lambda i: strict_loads(plaintexts[i].decode(), "resource"))),
        ("  json.loads of the plaintext alone", each(lambda i: json.loads(plaintexts[i]))),
        ("mapping: to_result (checks, types, PaymentResult)",
         each(lambda i: to_result(event_kind(envelopes[i].event_type), account, envelopes[i], resources[i],  # type: ignore[arg-type]
                                  provider=provider.name, key_id="k"))),
        ("  of which PaymentResult(**fields) validation", each(lambda i: PaymentResult(**fields[i]))),
        ("  of which make_event_id (SHA-256)",
         each(lambda i: _v3_mapping.make_event_id("shop", "payment", str(i), None, "SUCCESS"))),
        ("provider.parse, whole", each(lambda i: provider.parse(inbound[i], account))),
    ]  # fmt: skip
    return stages, [keys.settings(), requests, results, inbound]


def _after_parse(
    settings: dict[str, Any], inbound: Sequence[InboundRequest], results: Sequence[Any]
) -> Contender:
    """Notifier.handle with `parse` answered from a list: the checks, the store, the subscriber."""
    notifier = Notifier("memory://")
    account = notifier.add_account("shop", "wechatpay-v3", **settings)
    delivered: list[PaymentResult] = []

    @notifier.subscribe
    async def record(result: PaymentResult) -> None:
        delivered.append(result)

    def setup() -> None:
        notifier.store = MemoryStore()
        delivered.clear()

    async def run() -> None:
        answers = iter(results)
        parse = account.provider.parse
        account.provider.parse = lambda request, account: next(answers)  # type: ignore[method-assign]
        try:
            for request in inbound:
                await notifier.handle("shop", request)
        finally:
            account.provider.parse = parse  # type: ignore[method-assign]
        if len(delivered) != len(results):
            raise AssertionError(f"{len(delivered)} of {len(results)} delivered")

    return Contender("store + subscriber + checks (Notifier.handle, parse answered from a list)", run, setup)


def _adapter(requests: Sequence[Any]) -> list[Contender]:
    reply = Reply(204)

    async def answer(account: str, request: InboundRequest) -> Reply:
        return reply

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def ok(status: int, body: bytes) -> bool:
        return status == 204

    app = NotificationApp(answer, body_limit=1 << 20)
    return [
        Contender("ASGI: the harness and a raw ASGI reply", asgi_batch(raw, "/shop/notify", requests, ok)),
        Contender("ASGI: paynotify's adapter, constant reply", asgi_batch(app, "/shop/notify", requests, ok)),
    ]


def run(n: int, rounds: int) -> dict[str, Any]:
    loop = new_loop()
    stages, (settings, requests, results, inbound) = _stages(n)
    alone = [Contender(name, fn) for name, fn in stages]
    alone.append(_after_parse(settings, inbound, results))
    alone += _adapter(requests)
    timings = interleave(alone, n, rounds, loop)
    out: dict[str, Any] = {"machine": machine(), "n": n, "rounds": rounds, "alone": {}, "in_pipeline": {}}
    for name, timing in timings.items():
        out["alone"][name] = statistics.median(timing.rounds_us)

    # Inside the pipeline: the same notifications through the ASGI app, with timers around the
    # provider's parse and Notifier.handle (the timers' own cost, ~0.2 us each, is included).
    keys = WeChatV3Keys.generate()
    fresh = [as_request(h, b) for h, b in wechat_v3_notes(keys, n, "stages-in")]
    spent = {"parse": 0, "handle": 0}
    original_parse = Pipeline._parse
    original_handle = Pipeline.handle

    def timed_parse(self: Pipeline, account: Any, request: InboundRequest) -> Any:
        started = time.perf_counter_ns()
        try:
            return original_parse(self, account, request)
        finally:
            spent["parse"] += time.perf_counter_ns() - started

    async def timed_handle(self: Pipeline, account: str, request: InboundRequest) -> Reply:
        started = time.perf_counter_ns()
        try:
            return await original_handle(self, account, request)
        finally:
            spent["handle"] += time.perf_counter_ns() - started

    Pipeline._parse = timed_parse  # type: ignore[method-assign]
    Pipeline.handle = timed_handle  # type: ignore[method-assign]
    # Built after the timers are in: the ASGI app binds the pipeline's handle when it is made.
    contenders = paynotify_contenders("wechatpay-v3", keys.settings(), fresh, _v3_ok)
    split: dict[str, list[float]] = {"whole": [], "handle": [], "parse": []}
    try:
        by_name = {c.name: c for c in contenders}
        pipeline = by_name[PIPELINE]
        for _ in range(1 + rounds):
            assert pipeline.setup is not None
            pipeline.setup()
            spent["parse"] = spent["handle"] = 0
            started = time.perf_counter_ns()
            loop.run_until_complete(pipeline.run())  # type: ignore[arg-type]
            split["whole"].append((time.perf_counter_ns() - started) / n / 1000)
            split["handle"].append(spent["handle"] / n / 1000)
            split["parse"].append(spent["parse"] / n / 1000)
    finally:
        Pipeline._parse = original_parse  # type: ignore[method-assign]
        Pipeline.handle = original_handle  # type: ignore[method-assign]
    whole, handle, parse = (statistics.median(split[k][1:]) for k in ("whole", "handle", "parse"))
    out["in_pipeline"] = {
        "whole pipeline (ASGI)": whole,
        "provider.parse inside it": parse,
        "Notifier.handle minus parse (store, subscriber, checks)": handle - parse,
        "ASGI adapter and harness (whole minus handle)": whole - handle,
    }
    plain = interleave([by_name[PARSE], by_name[HANDLE]], n, rounds, loop)
    out["references"] = {name: statistics.median(t.rounds_us) for name, t in plain.items()}
    loop.close()
    asyncio.set_event_loop(None)
    return out


def table(out: dict[str, Any]) -> str:
    lines = [
        f"N = {out['n']}, {out['rounds']} rounds, median us per notification",
        "",
        "| stage | us |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {us:.2f} |" for name, us in out["alone"].items()]
    lines += ["", "| inside the whole pipeline | us |", "|---|---:|"]
    lines += [f"| {name} | {us:.2f} |" for name, us in out["in_pipeline"].items()]
    lines += [f"| *{name}* (its own loop) | {us:.2f} |" for name, us in out["references"].items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    out = run(args.n, args.rounds)
    if args.json:
        write_json(args.json, out)
    print(table(out))


if __name__ == "__main__":
    main()
