"""Part 1: per notification on one core, paynotify's whole pipeline called as ASGI against each SDK's
bare verification call and a bare Starlette route doing the minimal verification inline, on the same
genuinely signed notifications (same keys, same bytes), interleaved round by round.

    python -m bench.pipeline [--n 300] [--rounds 15] [--json out.json]

The pipeline: route, verify, normalise, deduplicate (memory store, fresh and empty each round so
every notification is new), dispatch to one async subscriber, reply.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from bench import _floors
from bench._common import (
    ASGIApp,
    Contender,
    Request,
    asgi_batch,
    interleave,
    machine,
    new_loop,
    write_json,
)
from bench._fixtures import (
    ALIPAY_APP_ID,
    AlipayKeys,
    WeChatV2Keys,
    WeChatV3Keys,
    alipay_requests,
    as_request,
    distinct,
    lower_headers,
    wechat_v2_requests,
    wechat_v3_notes,
)
from paynotify import InboundRequest, MemoryStore, Notifier, Observer, PaymentResult

PIPELINE = "paynotify pipeline (ASGI)"
BARE = "bare Starlette route (ASGI)"
HANDLE = "paynotify: Notifier.handle, no ASGI (store, dispatch)"
PARSE = "paynotify: provider.parse alone (verify, normalise)"


@dataclass
class Target:
    case: str
    contender: str
    limit: float
    stretch: float | None = None
    note: str = ""


@dataclass
class Case:
    name: str
    n: int
    contenders: list[Contender] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    note: str = ""


def paynotify_contenders(
    provider: str,
    settings: dict[str, Any],
    requests: Sequence[Request],
    check: Callable[[int, bytes], bool],
    *,
    observer: Observer | None = None,
) -> list[Contender]:
    """The whole pipeline through `Notifier.asgi()` with one async subscriber and a fresh memory store
    per round; and, as references, the same Notifier without ASGI (`handle`) and the provider alone."""
    notifier = Notifier("memory://")
    notifier.observe(observer)
    account = notifier.add_account("shop", provider, **settings)
    delivered: list[PaymentResult] = []

    @notifier.subscribe
    async def record(result: PaymentResult) -> None:  # async: awaited inline, no thread hop
        delivered.append(result)

    batch = asgi_batch(notifier.asgi(), "/shop/notify", requests, check)
    inbound = [InboundRequest("POST", "notify", lower_headers(r), b"", r[1]) for r in requests]

    def setup() -> None:
        notifier.store = MemoryStore()
        delivered.clear()

    def all_delivered() -> None:
        if len(delivered) != len(requests):
            raise AssertionError(f"{len(delivered)} of {len(requests)} notifications delivered")

    async def asgi() -> None:
        await batch()
        all_delivered()

    async def handle() -> None:
        for request in inbound:
            await notifier.handle("shop", request)
        all_delivered()

    def parse() -> None:
        for request in inbound:
            account.provider.parse(request, account)

    return [
        Contender(PIPELINE, asgi, setup),
        Contender(HANDLE, handle, setup, reference=True),
        Contender(PARSE, parse, reference=True),
    ]


def bare_contender(
    app: ASGIApp, requests: Sequence[Request], check: Callable[[int, bytes], bool]
) -> Contender:
    return Contender(BARE, asgi_batch(app, "/shop/notify", requests, check))


def sdk_route_contender(
    name: str,
    verify: _floors.Verify,
    requests: Sequence[Request],
    check: Callable[[int, bytes], bool],
    replies: tuple[Callable[[], Any], Callable[[], Any]],
) -> Contender:
    """The SDK as merchants deploy it: a Starlette route reading the body, calling the SDK, sending
    the provider's success reply."""
    return Contender(name, asgi_batch(_floors.floor_app(verify, *replies), "/shop/notify", requests, check))


def function_contender(name: str, verify: _floors.Verify, requests: Sequence[Request]) -> Contender:
    """A floor called as a plain function: no ASGI, no Starlette (a reference row)."""
    prepared = [(lower_headers(r), r[1]) for r in requests]

    def run() -> None:
        for headers, body in prepared:
            if not verify(headers, body):
                raise AssertionError("floor refused a genuine notification")

    return Contender(name, run, reference=True)


def _alipay_ok(status: int, body: bytes) -> bool:
    return status == 200 and body == b"success"


def _v2_ok(status: int, body: bytes) -> bool:
    return status == 200 and b"SUCCESS" in body


def _v3_ok(status: int, body: bytes) -> bool:
    return status == 204


# -- Alipay RSA2 -----------------------------------------------------------------------------------


def alipay_case(n: int) -> Case:
    from alipay import AliPay  # python-alipay-sdk (pycryptodomex)

    keys = AlipayKeys.generate()
    requests = alipay_requests(keys, n, "pipe-alipay")
    assert distinct(requests)
    sdk = AliPay(
        appid=ALIPAY_APP_ID,
        app_notify_url=None,
        app_private_key_string=keys.private_pem,
        alipay_public_key_string=keys.public_pem,
        sign_type="RSA2",
    )
    # "after form decoding": merchants hand the SDK the framework's decoded form, minus `sign`.
    decoded = []
    for _, body in requests:
        data = dict(parse_qsl(body.decode(), keep_blank_values=True))
        decoded.append((data, data.pop("sign")))

    def sdk_verify() -> None:
        for data, signature in decoded:
            if not sdk.verify(dict(data), signature):  # verify() pops sign_type: give it a copy
                raise AssertionError("python-alipay-sdk refused a genuine notification")

    public = _floors._rsa_public(keys.public_pem)
    signed = []
    for data, signature in decoded:
        fields = {k: v for k, v in data.items() if k != "sign_type"}
        content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v).encode()
        signed.append((base64.b64decode(signature), content))

    def rsa_alone() -> None:
        for signature, content in signed:
            public.verify(signature, content, _floors._PKCS1, _floors._SHA256)

    def sdk_in_route(headers: Any, body: bytes) -> bool:
        data = dict(parse_qsl(body.decode(), keep_blank_values=True))
        return bool(sdk.verify(data, data.pop("sign")))

    name = "Alipay RSA2"
    sdk_route = "python-alipay-sdk in a Starlette route"
    return Case(
        name,
        n,
        [
            *paynotify_contenders("alipay", keys.settings(), requests, _alipay_ok),
            sdk_route_contender(sdk_route, sdk_in_route, requests, _alipay_ok, _floors.ALIPAY_REPLIES),
            Contender("python-alipay-sdk AliPay.verify (after form decoding)", sdk_verify),
            bare_contender(_floors.alipay_app(keys.public_pem), requests, _alipay_ok),
            function_contender(
                "floor alone: parse_qsl + sign string + RSA verify", _floors.alipay(keys.public_pem), requests
            ),
            Contender("RSA2 verify alone (cryptography)", rsa_alone, reference=True),
        ],
        [
            Target(name, sdk_route, 0.40),
            Target(name, BARE, 1.15),
        ],
    )


# -- WeChat Pay v2 ---------------------------------------------------------------------------------


def _wechatpy_hmac_parse(api_key: str) -> Callable[[bytes], dict[str, Any]]:
    """wechatpy's parse_payment_result, line for line, with its own calculate_signature_hmac: the
    SDK verifies MD5 only on this call, so this is how a wechatpy user checks an HMAC one."""
    import xmltodict
    from wechatpy.exceptions import InvalidSignatureException
    from wechatpy.pay.utils import calculate_signature_hmac

    def parse(xml: bytes) -> dict[str, Any]:
        data = xmltodict.parse(xml)
        if not data or "xml" not in data:
            raise InvalidSignatureException()
        data = data["xml"]
        sign = data.pop("sign", None)
        if sign != calculate_signature_hmac(data, api_key):
            raise InvalidSignatureException()
        for key in ("total_fee", "settlement_total_fee", "cash_fee", "coupon_fee", "coupon_count"):
            if key in data:
                data[key] = int(data[key])
        data["sign"] = sign
        result: dict[str, Any] = data
        return result

    return parse


def wechat_v2_case(n: int, sign_type: str) -> Case:
    import xmltodict
    from wechatpy.pay import WeChatPay

    keys = WeChatV2Keys.generate(sign_type)
    requests = wechat_v2_requests(keys, n, f"pipe-v2-{sign_type}")
    bodies = [body for _, body in requests]
    if sign_type == "MD5":
        sdk = WeChatPay(
            appid=keys.settings()["appid"], api_key=keys.api_key, mch_id=keys.settings()["mch_id"]
        )
        parse = sdk.parse_payment_result
        sdk_name = "wechatpy WeChatPay.parse_payment_result (MD5)"
    else:
        parse = _wechatpy_hmac_parse(keys.api_key)
        sdk_name = "wechatpy parse_payment_result with calculate_signature_hmac"

    def sdk_parse() -> None:
        for body in bodies:
            parse(body)

    def xmltodict_alone() -> None:
        for body in bodies:
            xmltodict.parse(body)

    name = f"WeChat v2 {sign_type}"
    key = keys.api_key.encode()
    prepared = [_v2_sign_input(body) for body in bodies]

    def hash_alone() -> None:
        for content, sign in prepared:
            if sign_type == "MD5":
                expected = hashlib.md5(content + b"&key=" + key, usedforsecurity=False).hexdigest().upper()
            else:
                expected = hmac.new(key, content + b"&key=" + key, hashlib.sha256).hexdigest().upper()
            if not hmac.compare_digest(expected, sign):
                raise AssertionError("bad sign")

    def sdk_in_route(headers: Any, body: bytes) -> bool:
        try:
            parse(body)
        except Exception:
            return False
        return True

    sdk_route = f"{sdk_name.partition(' ')[0]} in a Starlette route"
    targets = [Target(name, sdk_route, 0.8), Target(name, sdk_name, 1.0)] if sign_type == "MD5" else []
    return Case(
        name,
        n,
        [
            *paynotify_contenders("wechatpay-v2", keys.settings(), requests, _v2_ok),
            sdk_route_contender(sdk_route, sdk_in_route, requests, _v2_ok, _floors.V2_REPLIES),
            Contender(sdk_name, sdk_parse),
            bare_contender(_floors.wechat_v2_app(keys.api_key, sign_type), requests, _v2_ok),
            function_contender(
                "floor alone: xmltodict + sign string + hash",
                _floors.wechat_v2(keys.api_key, sign_type),
                requests,
            ),
            Contender("xmltodict.parse alone", xmltodict_alone, reference=True),
            Contender(f"{sign_type} of the sign string alone", hash_alone, reference=True),
        ],
        targets,
        note="" if sign_type == "MD5" else "wechatpy's parse_payment_result verifies MD5 only; no target.",
    )


def _v2_sign_input(body: bytes) -> tuple[bytes, str]:
    import xmltodict

    fields = xmltodict.parse(body)["xml"]
    sign = fields.pop("sign")
    return "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v).encode(), sign


# -- WeChat Pay v3 ---------------------------------------------------------------------------------


def wechat_v3_case(n: int, cert_dir: Path) -> Case:
    import wechatpayv3  # type: ignore[import-untyped]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    keys = WeChatV3Keys.generate()
    notes = wechat_v3_notes(keys, n, "pipe-v3")
    requests = [as_request(headers, body) for headers, body in notes]
    assert keys.signer.certificate_pem is not None
    # wechatpayv3 reads platform certificates from cert_dir (*.pem) at start-up: no network.
    (cert_dir / f"{keys.signer.key_id}.pem").write_text(keys.signer.certificate_pem)
    merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    sdk = wechatpayv3.WeChatPay(
        wechatpay_type=wechatpayv3.WeChatPayType.NATIVE,
        mchid=keys.settings()["mchid"],
        private_key=merchant_key.decode(),
        cert_serial_no="0" * 40,
        appid=keys.settings()["appid"],
        apiv3_key=keys.apiv3_key,
        cert_dir=str(cert_dir),
    )

    def sdk_callback() -> None:
        for headers, body in notes:
            if sdk.callback(headers, body) is None:
                raise AssertionError("wechatpayv3 refused a genuine notification")

    def sdk_in_route(headers: Any, body: bytes) -> bool:
        return sdk.callback(headers, body) is not None

    name = "WeChat v3 (platform certificate)"
    sdk_name = "wechatpayv3 WeChatPay.callback (no replay window)"
    sdk_route = "wechatpayv3 in a Starlette route"
    return Case(
        name,
        n,
        [
            *paynotify_contenders("wechatpay-v3", keys.settings(), requests, _v3_ok),
            sdk_route_contender(sdk_route, sdk_in_route, requests, _v3_ok, _floors.V3_REPLIES),
            Contender(sdk_name, sdk_callback),
            bare_contender(
                _floors.wechat_v3_app(keys.signer.public_key_pem, keys.apiv3_key), requests, _v3_ok
            ),
            function_contender(
                "floor alone: window + RSA verify + JSON + AES-GCM",
                _floors.wechat_v3(keys.signer.public_key_pem, keys.apiv3_key),
                requests,
            ),
        ],
        [
            Target(name, sdk_route, 1.0, None, "paynotify also checks the 300 s replay window"),
            Target(name, sdk_name, 1.6, 1.0, "information: the SDK's bare call reads no HTTP request"),
        ],
    )


# -- UnionPay --------------------------------------------------------------------------------------


def _unionpay_ok(status: int, body: bytes) -> bool:
    return status == 200 and body == b"ok"


def unionpay_case(n: int) -> Case:
    from paynotify_unionpay.testing import MER_ID, encode_form, generate_chain, make_notify

    chain = generate_chain()
    bodies = [make_notify(chain, mer_id=MER_ID, order_id=f"bench{i:010d}") for i in range(n)]
    requests = [as_request({"content-type": "application/x-www-form-urlencoded"}, b) for b in bodies]
    assert encode_form  # the same encoding UnionPay uses (UTF-8, %20 for space) made the bodies
    settings = {"mer_id": MER_ID, **chain.account_settings()}
    name = "UnionPay 5.1.0"
    return Case(
        name,
        n,
        [
            *paynotify_contenders("unionpay", settings, requests, _unionpay_ok),
            bare_contender(_floors.unionpay_app(chain.middle_pem), requests, _unionpay_ok),
            function_contender(
                "floor alone: parse_qsl + cert (cached) + SHA-256 hex + RSA verify",
                _floors.unionpay(chain.middle_pem),
                requests,
            ),
        ],
        [Target(name, BARE, 1.5, 1.3, "paynotify also checks the CN and the chain at the leaf's validity")],
    )


# -- running ---------------------------------------------------------------------------------------


CASES = ("alipay", "v2", "v3", "unionpay")


def run(n: int, rounds: int, only: Sequence[str] = CASES) -> dict[str, Any]:
    from paynotify import registry

    loop = new_loop()
    cases: dict[str, Any] = {}
    targets: list[Target] = []
    notes: list[str] = []
    builders: list[Callable[[Path], Case]] = []
    if "alipay" in only:
        builders.append(lambda _: alipay_case(n))
    if "v2" in only:
        builders += [lambda _: wechat_v2_case(n, "MD5"), lambda _: wechat_v2_case(n, "HMAC-SHA256")]
    if "unionpay" in only and "unionpay" in registry.names():
        builders.append(lambda _: unionpay_case(n))
    if "v3" in only and "wechatpay-v3" in registry.names():
        builders.append(lambda d: wechat_v3_case(n, d))
    elif "v3" in only:
        notes.append("WeChat v3 skipped: provider `wechatpay-v3` is not registered in this installation.")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for build in builders:
                started = time.monotonic()
                case = build(Path(tmp))  # built just before it runs: v3 timestamps stay in the window
                timings = interleave(case.contenders, case.n, rounds, loop)
                cases[case.name] = {
                    "contenders": {k: t.as_dict() for k, t in timings.items()},
                    "note": case.note,
                    "seconds": time.monotonic() - started,
                }
                targets.extend(case.targets)
                print(
                    f"  {case.name}: " + ", ".join(f"{k} {t.best:.1f}" for k, t in timings.items()),
                    flush=True,
                )
    finally:
        loop.close()
    return {
        "machine": machine(),
        "n": n,
        "rounds": rounds,
        "cases": cases,
        "targets": [t.__dict__ for t in targets],
        "notes": notes,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="distinct notifications per case")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timed rounds")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--cases", default=",".join(CASES), help="a comma-separated subset of: %(default)s")
    args = parser.parse_args(argv)
    results = run(args.n, args.rounds, args.cases.split(","))
    if args.json:
        write_json(args.json, results)
    from bench.report import pipeline_table

    print(pipeline_table(results))


if __name__ == "__main__":
    main()
