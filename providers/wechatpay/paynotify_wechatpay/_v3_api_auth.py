"""Both signatures of a WeChat Pay API v3 call: the merchant's on the request, WeChat Pay's on the answer.

Request: `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="...",nonce_str="...",signature="...",
timestamp="...",serial_no="..."`, where the signature is RSA PKCS#1 v1.5 SHA-256, with the merchant's
API private key (apiclient_key.pem), over `METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n` (the
URL without scheme and host, exactly as sent; an empty line for a GET's empty body). `serial_no`
is the serial of the merchant's API certificate (商户API证书), which WeChat Pay uses to pick the key.

Answer: signed in its Wechatpay-* headers exactly like a notification (`_v3_signature.verify`: the
key `Wechatpay-Serial` names, the replay window, the exact body bytes). Nothing of an answer is
read before it verified.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from paynotify import ApiRequest, ApiResponse
from paynotify_wechatpay._v3_keys import Keyring, V3Key
from paynotify_wechatpay._v3_signature import SIGNATURE_TYPE, SignedHeaders, verify

__all__ = [
    "AUTH_SCHEME",
    "USER_AGENT",
    "authorization",
    "parse_authorization",
    "request_message",
    "signed_request",
    "verify_answer",
    "verify_request_signature",
]

AUTH_SCHEME = SIGNATURE_TYPE
USER_AGENT = "paynotify-wechatpay/0.1"
"""WeChat Pay refuses requests without a User-Agent."""
_NONCE_ALPHABET = string.ascii_uppercase + string.digits
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_AUTH_FIELDS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")


def request_message(method: str, path_query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The exact bytes the merchant signs for one request."""
    head = f"{method.upper()}\n{path_query}\n{timestamp}\n{nonce}\n".encode("ascii")
    return head + body + b"\n"


def authorization(
    private_key: RSAPrivateKey,
    *,
    mchid: str,
    serial_no: str,
    method: str,
    path_query: str,
    body: bytes = b"",
    timestamp: str,
    nonce: str,
) -> str:
    """The `Authorization` header value of one request."""
    signed = request_message(method, path_query, timestamp, nonce, body)
    signature = base64.b64encode(private_key.sign(signed, _PKCS1, _SHA256)).decode("ascii")
    values = {"mchid": mchid, "nonce_str": nonce, "signature": signature, "timestamp": timestamp,
              "serial_no": serial_no}  # fmt: skip
    return f"{AUTH_SCHEME} " + ",".join(f'{name}="{values[name]}"' for name in _AUTH_FIELDS)


def signed_request(
    private_key: RSAPrivateKey,
    *,
    base_url: str,
    mchid: str,
    serial_no: str,
    path_query: str,
    now: float,
    method: str = "GET",
    body: bytes = b"",
) -> ApiRequest:
    """A request to WeChat Pay's API, signed now with a fresh 32-character nonce."""
    nonce = "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(32))
    value = authorization(
        private_key, mchid=mchid, serial_no=serial_no, method=method, path_query=path_query, body=body,
        timestamp=str(int(now)), nonce=nonce,
    )  # fmt: skip
    headers = {"Authorization": value, "Accept": "application/json", "User-Agent": USER_AGENT}
    if body:
        headers["Content-Type"] = "application/json"
    return ApiRequest(method, base_url.rstrip("/") + path_query, headers, body)


def verify_answer(response: ApiResponse, keyring: Keyring, *, now: float, tolerance: int) -> V3Key:
    """The trusted key that signed this answer; VerificationError naming the rule if none did."""
    headers = SignedHeaders.from_headers(response.headers)
    return verify(headers, response.body, keyring, now=now, tolerance=tolerance)


def parse_authorization(value: str) -> dict[str, str] | None:
    """The fields of an `Authorization` header value, or None when it is not WeChat Pay's scheme."""
    scheme, _, rest = value.partition(" ")
    if scheme != AUTH_SCHEME:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, quoted = part.strip().partition("=")
        if not sep or len(quoted) < 2 or not (quoted[0] == quoted[-1] == '"'):
            return None
        fields[name] = quoted[1:-1]
    return fields if all(name in fields for name in _AUTH_FIELDS) else None


def verify_request_signature(
    fields: Mapping[str, str], public_key: RSAPublicKey, *, method: str, path_query: str, body: bytes
) -> bool:
    """Whether a request's Authorization fields carry the merchant's signature (the emulator's check)."""
    try:
        raw = base64.b64decode(fields["signature"], validate=True)
        signed = request_message(method, path_query, fields["timestamp"], fields["nonce_str"], body)
        public_key.verify(raw, signed, _PKCS1, _SHA256)
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        return False
    return True
