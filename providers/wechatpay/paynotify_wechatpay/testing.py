"""Genuine WeChat Pay API v2 notifications, made with throwaway API keys, for tests and demos.

    from paynotify_wechatpay import testing

    key = testing.generate_api_key()
    notifier.add_account("shop", "wechatpay-v2", appid=testing.APPID, mch_id=testing.MCH_ID,
                         api_key=key, sign_type="HMAC-SHA256")
    body = testing.make_v2_payment_notify(key, appid=testing.APPID, mch_id=testing.MCH_ID,
                                          out_trade_no="order-1", sign_type="HMAC-SHA256")
    response = client.post("/shop/notify", content=body, headers={"content-type": "text/xml"})
    assert b"SUCCESS" in response.content

Signing uses the content rule verification uses (`sign()` beside `verify()`) and refund
encryption the cipher decryption uses; the real vectors in the test suite pin both to WeChat Pay.
A keyword argument given as None removes that field from the notification.

API v3 (`wechatpay-v3`): WeChat Pay signs with a platform certificate's key or with its public
key; `generate_v3_platform_certificate()` and `generate_v3_public_key()` make throwaway ones,
and `V3SigningKey.account_settings()` is what an account trusting it is given:

    cert = testing.generate_v3_platform_certificate()
    apiv3_key = testing.generate_apiv3_key()
    notifier.add_account("shop", "wechatpay-v3", mchid=testing.MCH_ID, appid=testing.APPID,
                         apiv3_key=apiv3_key, **cert.account_settings())
    headers, body = testing.make_v3_transaction_notify(cert, apiv3_key, appid=testing.APPID,
                                                       mchid=testing.MCH_ID, out_trade_no="order-1")
    response = client.post("/shop/notify", content=body, headers=headers)
    assert response.status_code == 204

The v3 helpers build a resource (`v3_transaction_resource`, `v3_refund_resource`), encrypt it
with the APIv3 key (`encrypt_v3_resource`), wrap it in the notification JSON and sign the exact
bytes (`sign_v3`) with the cipher and message rule verification uses; the real v3 vector in the
test suite pins both to WeChat Pay.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from paynotify import BEIJING
from paynotify_wechatpay._v2_refund_crypto import encrypt_req_info, refund_key
from paynotify_wechatpay._v2_signature import SignType, sign
from paynotify_wechatpay._v3_crypto import NONCE_LENGTH, encrypt_resource
from paynotify_wechatpay._v3_keys import PUBLIC_KEY_ID_PREFIX, certificate_serial
from paynotify_wechatpay._v3_signature import SIGNATURE_TYPE
from paynotify_wechatpay._v3_signature import sign as _sign_v3_message

if TYPE_CHECKING:
    from paynotify_wechatpay._v2_emulator import WeChatPayV2Emulator, local_v2_emulator
    from paynotify_wechatpay._v3_emulator import WeChatPayV3Emulator, local_v3_emulator
from paynotify_wechatpay._xml import to_xml

__all__ = [
    "APPID",
    "MCH_ID",
    "OPENID",
    "PROVIDER_SIDE_V3_KEY",
    "SUB_MCH_ID",
    "V3SigningKey",
    "WeChatPayV2Emulator",
    "WeChatPayV3Emulator",
    "encrypt_v2_req_info",
    "encrypt_v3_resource",
    "generate_api_key",
    "generate_apiv3_key",
    "generate_merchant_key",
    "generate_v3_platform_certificate",
    "generate_v3_public_key",
    "local_v2_emulator",
    "local_v3_emulator",
    "make_v2_payment_notify",
    "make_v2_refund_notify",
    "make_v3_notify",
    "make_v3_refund_notify",
    "make_v3_transaction_notify",
    "sign_v2",
    "sign_v3",
    "v3_refund_resource",
    "v3_transaction_resource",
]

APPID = "wx2421b1c4370ec43b"
"""The appid the examples use (the one in WeChat Pay's own documentation)."""
MCH_ID = "10000100"
OPENID = "oUpF8uMEb4qRXf22hE3X68TekukE"
SUB_MCH_ID = "1900000109"
"""The sub-merchant the service-provider examples use."""
PROVIDER_SIDE_V3_KEY = "keys/provider-side/wechatpay_v3_private_key.pem"
"""Where `paynotify init` writes WeChat Pay's side of the v3 public key (relative to the service)."""

Fields = Mapping[str, str | int | None]


def generate_api_key() -> str:
    """A fresh random 32-character API v2 key (letters and digits, like the merchant platform's)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def sign_v2(fields: Fields, api_key: str, sign_type: SignType = "MD5") -> str:
    """The `sign` of `fields` (integers as decimal text; None and `sign` itself left out)."""
    return sign(_text(fields), api_key.encode("ascii"), sign_type)


def encrypt_v2_req_info(plaintext: bytes, api_key: str) -> str:
    """`req_info` as WeChat Pay makes it: PKCS#7, AES-256-ECB with md5(api_key) hex, base64."""
    return encrypt_req_info(plaintext, refund_key(api_key.encode("ascii")))


def make_v2_payment_notify(
    api_key: str,
    *,
    appid: str,
    mch_id: str,
    out_trade_no: str,
    total_fee: int = 8888,
    result_code: str = "SUCCESS",
    sign_type: SignType = "MD5",
    include_sign_type: bool = False,
    **extra: str | int | None,
) -> bytes:
    """A signed payment result notification, as WeChat Pay POSTs it (fields in CDATA, sorted).

    transaction_id is derived from mch_id and out_trade_no, so a resend of one order's notification
    carries the same one (as WeChat Pay's do) with a new nonce_str. `sign_type` is the algorithm;
    `include_sign_type` also puts it in the message (HMAC-signed notifications often lack it).
    """
    fields: dict[str, str | int | None] = {
        "appid": appid,
        "bank_type": "OTHERS",
        "cash_fee": total_fee,
        "fee_type": "CNY",
        "is_subscribe": "N",
        "mch_id": mch_id,
        "nonce_str": secrets.token_hex(16),
        "openid": OPENID,
        "out_trade_no": out_trade_no,
        "result_code": result_code,
        "return_code": "SUCCESS",
        "time_end": datetime.now(BEIJING).strftime("%Y%m%d%H%M%S"),
        "total_fee": total_fee,
        "trade_type": "JSAPI",
        "transaction_id": _transaction_id(mch_id, out_trade_no),
    }
    if result_code == "FAIL":
        fields.update(err_code="SYSTEMERROR", err_code_des="系统错误")
    if include_sign_type:
        fields["sign_type"] = sign_type
    fields.update(extra)
    present = _present(fields)
    present["sign"] = sign_v2(present, api_key, sign_type)
    return to_xml(dict(sorted(present.items()))).encode()


def make_v2_refund_notify(
    api_key: str,
    *,
    appid: str,
    mch_id: str,
    out_trade_no: str,
    out_refund_no: str,
    total_fee: int,
    refund_fee: int,
    refund_status: str = "SUCCESS",
    outer: Fields | None = None,
    **extra: str | int | None,
) -> bytes:
    """A refund result notification with `req_info` encrypted exactly as WeChat Pay does.

    `extra` changes the decrypted `<root>` fields, `outer` the unencrypted `<xml>` ones (for
    example sub_mch_id). success_time is set when refund_status is SUCCESS.
    """
    inner: dict[str, str | int | None] = {
        "out_refund_no": out_refund_no,
        "out_trade_no": out_trade_no,
        "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_fee": refund_fee,
        "refund_id": _refund_id(mch_id, out_refund_no),
        "refund_recv_accout": "支付用户的零钱",
        "refund_request_source": "API",
        "refund_status": refund_status,
        "settlement_refund_fee": refund_fee,
        "settlement_total_fee": total_fee,
        "success_time": (
            datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if refund_status == "SUCCESS" else None
        ),
        "total_fee": total_fee,
        "transaction_id": _transaction_id(mch_id, out_trade_no),
    }
    inner.update(extra)
    # WeChat Pay puts every decrypted value in CDATA, one element a line.
    plaintext = to_xml({k: str(v) for k, v in _present(inner).items()}, "root", newlines=True)
    fields: dict[str, str | int | None] = {
        "return_code": "SUCCESS",
        "appid": appid,
        "mch_id": mch_id,
        "nonce_str": secrets.token_hex(16),
        "req_info": encrypt_v2_req_info(plaintext.encode(), api_key),
    }
    fields.update(outer or {})
    return to_xml(_present(fields)).encode()


def _present(fields: Fields) -> dict[str, str | int]:
    return {name: value for name, value in fields.items() if value is not None}


def _text(fields: Fields) -> dict[str, str]:
    return {name: str(value) for name, value in fields.items() if value is not None}


def _digits(*parts: str, length: int) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return str(int.from_bytes(digest, "big"))[:length].rjust(length, "0")


def _transaction_id(mch_id: str, out_trade_no: str) -> str:
    return "4200000" + _digits("transaction", mch_id, out_trade_no, length=21)


def _refund_id(mch_id: str, out_refund_no: str) -> str:
    return "50300" + _digits("refund", mch_id, out_refund_no, length=24)


# API v3


@dataclass(frozen=True, slots=True)
class V3SigningKey:
    """A throwaway WeChat Pay API v3 signing key: WeChat Pay's side (`private_key`) and the
    account's side (a platform certificate, or a public key with its PUB_KEY_ID).

    `key_id` is what `Wechatpay-Serial` carries: the certificate serial (upper-case hex) or the
    PUB_KEY_ID.
    """

    key_id: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    public_key_pem: str = field(repr=False)
    certificate_pem: str | None = field(default=None, repr=False)

    def account_settings(self) -> dict[str, Any]:
        """The settings that make an account trust this key (merge with the account's others)."""
        if self.certificate_pem is not None:
            return {"platform_certificates": [self.certificate_pem]}
        return {"public_key_id": self.key_id, "public_key": self.public_key_pem}


def generate_merchant_key() -> rsa.RSAPrivateKey:
    """A fresh RSA 2048 key standing in for the merchant's API key (apiclient_key.pem)."""
    return _rsa_key()


def generate_apiv3_key() -> str:
    """A fresh random 32-character APIv3 key (letters and digits, like the merchant platform's)."""
    return generate_api_key()


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def generate_v3_platform_certificate(serial: int | None = None) -> V3SigningKey:
    """A fresh RSA 2048 key and a self-signed platform certificate for it (valid for 5 years).

    `serial` defaults to a random 159-bit number, like WeChat Pay's 40-hex-digit serials.
    """
    key = _rsa_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paynotify testing (not Tenpay)"),
            x509.NameAttribute(NameOID.COMMON_NAME, "throwaway WeChat Pay platform certificate"),
        ]
    )
    now = datetime.now(BEIJING)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=5 * 365))
        .sign(key, hashes.SHA256())
    )
    return V3SigningKey(
        key_id=certificate_serial(certificate),
        private_key=key,
        public_key_pem=_public_pem(key),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


def generate_v3_public_key(public_key_id: str | None = None) -> V3SigningKey:
    """A fresh RSA 2048 key as a WeChat Pay public key, named `PUB_KEY_ID_` + 34 random digits."""
    key = _rsa_key()
    digits = "".join(secrets.choice(string.digits) for _ in range(34))
    return V3SigningKey(
        key_id=public_key_id or f"{PUBLIC_KEY_ID_PREFIX}{digits}",
        private_key=key,
        public_key_pem=_public_pem(key),
    )


def _nonce(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def sign_v3(
    body: bytes,
    signing_key: V3SigningKey,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
    signature_type: str | None = SIGNATURE_TYPE,
) -> dict[str, str]:
    """The headers WeChat Pay sends with `body`: Wechatpay-Timestamp (now), -Nonce, -Serial,
    -Signature (over the exact bytes), -Signature-Type (None leaves it out), and Content-Type."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or _nonce(32)
    headers = {
        "Content-Type": "application/json",
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": signing_key.key_id,
        "Wechatpay-Signature": _sign_v3_message(signing_key.private_key, stamp, nonce, body),
        "Wechatpay-Timestamp": stamp,
    }
    if signature_type is not None:
        headers["Wechatpay-Signature-Type"] = signature_type
    return headers


def encrypt_v3_resource(
    resource: Mapping[str, Any] | bytes,
    apiv3_key: str,
    *,
    associated_data: str = "transaction",
    original_type: str = "transaction",
    nonce: str | None = None,
) -> dict[str, str]:
    """The `resource` object of a notification: AEAD_AES_256_GCM with the APIv3 key, a fresh
    12-character nonce, base64(ciphertext || tag). A mapping is serialised as WeChat Pay does
    (compact JSON, UTF-8)."""
    plaintext = resource if isinstance(resource, bytes) else _json(resource)
    return encrypt_resource(
        plaintext,
        apiv3_key.encode(),
        nonce=nonce or _nonce(NONCE_LENGTH),
        associated_data=associated_data,
        original_type=original_type,
    )


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _rfc3339(moment: datetime | None = None) -> str:
    return (moment or datetime.now(BEIJING)).astimezone(BEIJING).isoformat(timespec="seconds")


def _without_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def _merchant_ids(appid: str | None, mchid: str, sub_mchid: str | None) -> dict[str, Any]:
    if sub_mchid is None:
        return {"appid": appid, "mchid": mchid}
    return {"sp_appid": appid, "sp_mchid": mchid, "sub_mchid": sub_mchid}


def v3_transaction_resource(
    *,
    appid: str,
    mchid: str,
    out_trade_no: str,
    total: int = 8888,
    trade_state: str = "SUCCESS",
    sub_mchid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A decrypted TRANSACTION resource. With `sub_mchid`, a service provider's: appid / mchid
    become sp_appid / sp_mchid and the payer is payer.sp_openid. `extra` changes or adds fields;
    a field (or argument) given as None is left out."""
    paid = trade_state in ("SUCCESS", "REFUND")
    resource: dict[str, Any] = {
        **_merchant_ids(appid, mchid, sub_mchid),
        "out_trade_no": out_trade_no,
        "transaction_id": _transaction_id(str(mchid), str(out_trade_no)) if paid else None,
        "trade_type": "JSAPI",
        "trade_state": trade_state,
        "trade_state_desc": "支付成功" if trade_state == "SUCCESS" else trade_state,
        "bank_type": "OTHERS" if paid else None,
        "attach": "",
        "success_time": _rfc3339() if paid else None,
        "payer": {"sp_openid" if sub_mchid else "openid": OPENID},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
    }
    resource.update(extra)
    return _without_none(resource)


def v3_refund_resource(
    *,
    mchid: str,
    out_trade_no: str,
    out_refund_no: str,
    total: int,
    refund: int,
    refund_status: str = "SUCCESS",
    sub_mchid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A decrypted REFUND resource (it has no appid). With `sub_mchid`, a service provider's."""
    resource: dict[str, Any] = {
        **_merchant_ids(None, mchid, sub_mchid),
        "out_trade_no": out_trade_no,
        "transaction_id": _transaction_id(str(mchid), str(out_trade_no)),
        "out_refund_no": out_refund_no,
        "refund_id": _refund_id(str(mchid), str(out_refund_no)),
        "refund_status": refund_status,
        "success_time": _rfc3339() if refund_status == "SUCCESS" else None,
        "user_received_account": "支付用户零钱",
        "amount": {"total": total, "refund": refund, "payer_total": total, "payer_refund": refund},
    }
    resource.update(extra)
    return _without_none(resource)


def make_v3_notify(
    signing_key: V3SigningKey,
    apiv3_key: str,
    resource: Mapping[str, Any] | bytes,
    *,
    event_type: str,
    summary: str = "",
    original_type: str = "transaction",
    notification_id: str | None = None,
    timestamp: int | None = None,
    **headers: Any,
) -> tuple[dict[str, str], bytes]:
    """Any v3 notification: `resource` encrypted, wrapped as WeChat Pay does, signed.

    Returns (headers, body). `headers` takes sign_v3's keyword arguments (nonce, signature_type).
    """
    envelope = {
        "id": notification_id or str(uuid.uuid4()),
        "create_time": _rfc3339(None if timestamp is None else datetime.fromtimestamp(timestamp, BEIJING)),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": encrypt_v3_resource(
            resource, apiv3_key, associated_data=original_type, original_type=original_type
        ),
    }
    body = _json(envelope)
    return sign_v3(body, signing_key, timestamp=timestamp, **headers), body


def make_v3_transaction_notify(
    signing_key: V3SigningKey,
    apiv3_key: str,
    *,
    appid: str,
    mchid: str,
    out_trade_no: str,
    total: int = 8888,
    trade_state: str = "SUCCESS",
    sub_mchid: str | None = None,
    event_type: str | None = None,
    timestamp: int | None = None,
    **extra: Any,
) -> tuple[dict[str, str], bytes]:
    """A signed, encrypted payment notification (TRANSACTION.SUCCESS, or TRANSACTION.FAIL when
    trade_state is not SUCCESS, unless `event_type` says otherwise). `extra` changes resource fields."""
    resource = v3_transaction_resource(
        appid=appid, mchid=mchid, out_trade_no=out_trade_no, total=total, trade_state=trade_state,
        sub_mchid=sub_mchid, **extra,
    )  # fmt: skip
    default_type = "TRANSACTION.SUCCESS" if trade_state == "SUCCESS" else "TRANSACTION.FAIL"
    return make_v3_notify(
        signing_key, apiv3_key, resource, event_type=event_type or default_type, summary="支付成功",
        original_type="transaction", timestamp=timestamp,
    )  # fmt: skip


def make_v3_refund_notify(
    signing_key: V3SigningKey,
    apiv3_key: str,
    *,
    mchid: str,
    out_trade_no: str,
    out_refund_no: str,
    total: int,
    refund: int,
    refund_status: str = "SUCCESS",
    sub_mchid: str | None = None,
    timestamp: int | None = None,
    **extra: Any,
) -> tuple[dict[str, str], bytes]:
    """A signed, encrypted refund notification, event type REFUND.<refund_status>."""
    resource = v3_refund_resource(
        mchid=mchid, out_trade_no=out_trade_no, out_refund_no=out_refund_no, total=total, refund=refund,
        refund_status=refund_status, sub_mchid=sub_mchid, **extra,
    )  # fmt: skip
    return make_v3_notify(
        signing_key, apiv3_key, resource, event_type=f"REFUND.{refund_status}", summary="退款状态变更",
        original_type="refund", timestamp=timestamp,
    )  # fmt: skip


def __getattr__(name: str) -> Any:
    # The emulators (local WeChat Pay APIs v2 and v3, _v2_emulator, _v3_emulator) build on the
    # helpers above: imported on first use, so neither module has to be imported before the other.
    if name == "WeChatPayV3Emulator":
        from paynotify_wechatpay._v3_emulator import WeChatPayV3Emulator

        return WeChatPayV3Emulator
    if name == "WeChatPayV2Emulator":
        from paynotify_wechatpay._v2_emulator import WeChatPayV2Emulator

        return WeChatPayV2Emulator
    if name in ("local_v2_emulator", "local_v3_emulator"):
        from paynotify_wechatpay import _v2_emulator, _v3_emulator

        return getattr(_v2_emulator if name == "local_v2_emulator" else _v3_emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
