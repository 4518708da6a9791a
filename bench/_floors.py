"""The floors: the least a hand-written handler must do to accept a notification, written inline.

Each `verify(headers, body) -> bool` is what a merchant's bare route would do: parse, rebuild the
signed content, verify with a key parsed once, (v3) check the replay window and decrypt. No store,
no normalisation, no typed result. `floor_app` puts one in a bare Starlette route.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

Verify = Callable[[Mapping[str, str], bytes], bool]

_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _rsa_public(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def alipay(public_pem: str) -> Verify:
    """Form decode (parse_qsl), V1 sign string, RSA2 verify."""
    public = _rsa_public(public_pem)

    def verify(headers: Mapping[str, str], body: bytes) -> bool:
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        signature = base64.b64decode(fields.pop("sign"))
        fields.pop("sign_type", None)
        content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v).encode()
        try:
            public.verify(signature, content, _PKCS1, _SHA256)
        except InvalidSignature:
            return False
        return True

    return verify


def wechat_v2(api_key: str, sign_type: str) -> Verify:
    """xmltodict (entities off), sign string, MD5 or HMAC-SHA256, constant-time compare."""
    import xmltodict

    key = api_key.encode()
    suffix = f"&key={api_key}"

    def verify(headers: Mapping[str, str], body: bytes) -> bool:
        fields = xmltodict.parse(body, disable_entities=True)["xml"]
        sign = fields.pop("sign", "")
        text = ("&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v) + suffix).encode()
        if sign_type == "MD5":
            expected = hashlib.md5(text, usedforsecurity=False).hexdigest().upper()
        else:
            expected = hmac.new(key, text, hashlib.sha256).hexdigest().upper()
        return hmac.compare_digest(expected, sign)

    return verify


def wechat_v3(public_pem: str, apiv3_key: str, tolerance: int = 300) -> Verify:
    """Replay window, RSA verify of timestamp/nonce/body, JSON, AES-256-GCM decrypt, JSON."""
    public = _rsa_public(public_pem)
    aead = AESGCM(apiv3_key.encode())

    def verify(headers: Mapping[str, str], body: bytes) -> bool:
        timestamp = headers["wechatpay-timestamp"]
        if abs(time.time() - int(timestamp)) > tolerance:
            return False
        message = b"%s\n%s\n%s\n" % (timestamp.encode(), headers["wechatpay-nonce"].encode(), body)
        try:
            public.verify(base64.b64decode(headers["wechatpay-signature"]), message, _PKCS1, _SHA256)
        except InvalidSignature:
            return False
        resource = json.loads(body)["resource"]
        try:
            plain = aead.decrypt(
                resource["nonce"].encode(),
                base64.b64decode(resource["ciphertext"]),
                resource["associated_data"].encode(),
            )
        except InvalidTag:
            return False
        json.loads(plain)
        return True

    return verify


def floor_app(verify: Verify, success: Callable[[], Response], failure: Callable[[], Response]) -> Starlette:
    """One bare Starlette route, POST /shop/notify, doing `verify` inline on the event loop."""

    async def notify(request: Request) -> Response:
        body = await request.body()
        return success() if verify(request.headers, body) else failure()

    return Starlette(routes=[Route("/shop/notify", notify, methods=["POST"])])


def unionpay(middle_pem: str) -> Verify:
    """UnionPay 5.1.0 as a hand-written handler would do it: form decode, the leaf certificate from
    signPubKeyCert (parsed and checked against the middle once per distinct certificate, as
    paynotify caches it too), its validity now, sign string, SHA-256 hex, RSA SHA-256 verify."""
    from cryptography import x509

    middle = x509.load_pem_x509_certificate(middle_pem.encode())
    middle_key = middle.public_key()
    assert isinstance(middle_key, rsa.RSAPublicKey)
    leaves: dict[str, x509.Certificate] = {}

    def leaf(pem: str) -> x509.Certificate:
        found = leaves.get(pem)
        if found is None:
            found = x509.load_pem_x509_certificate(pem.encode())
            middle_key.verify(found.signature, found.tbs_certificate_bytes, _PKCS1, hashes.SHA1())
            leaves[pem] = found
        return found

    def verify(headers: Mapping[str, str], body: bytes) -> bool:
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        signature = base64.b64decode(fields.pop("signature"))
        certificate = leaf(fields["signPubKeyCert"])
        now = time.time()
        if (
            not certificate.not_valid_before_utc.timestamp()
            <= now
            <= certificate.not_valid_after_utc.timestamp()
        ):
            return False
        content = "&".join(f"{k}={v}" for k, v in sorted(fields.items())).encode()
        digest = hashlib.sha256(content).hexdigest().encode()
        public = certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        try:
            public.verify(signature, digest, _PKCS1, _SHA256)
        except InvalidSignature:
            return False
        return True

    return verify


UNIONPAY_REPLIES = (lambda: PlainTextResponse("ok"), lambda: PlainTextResponse("fail", 400))


def unionpay_app(middle_pem: str) -> Starlette:
    return floor_app(unionpay(middle_pem), *UNIONPAY_REPLIES)


ALIPAY_REPLIES = (lambda: PlainTextResponse("success"), lambda: PlainTextResponse("fail"))


def alipay_app(public_pem: str) -> Starlette:
    return floor_app(alipay(public_pem), *ALIPAY_REPLIES)


_V2_OK = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
_V2_FAIL = b"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[sign]]></return_msg></xml>"


V2_REPLIES = (
    lambda: Response(_V2_OK, media_type="application/xml"),
    lambda: Response(_V2_FAIL, media_type="application/xml"),
)


def wechat_v2_app(api_key: str, sign_type: str) -> Starlette:
    return floor_app(wechat_v2(api_key, sign_type), *V2_REPLIES)


V3_REPLIES = (
    lambda: Response(status_code=204),
    lambda: Response(b'{"code":"FAIL","message":"signature"}', 401, media_type="application/json"),
)


def wechat_v3_app(public_pem: str, apiv3_key: str) -> Starlette:
    return floor_app(wechat_v3(public_pem, apiv3_key), *V3_REPLIES)


def success_app() -> Starlette:
    """The ceiling: a route that reads the body and answers `success` without verifying anything."""

    async def notify(request: Request) -> Response:
        await request.body()
        return PlainTextResponse("success")

    return Starlette(routes=[Route("/shop/notify", notify, methods=["POST"])])
