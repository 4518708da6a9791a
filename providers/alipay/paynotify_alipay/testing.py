"""Genuinely signed Alipay notifications and returns, made with throwaway keys, for tests and demos.

    from paynotify_alipay import testing

    key = testing.generate_key()
    notifier.add_account("shop", "alipay", app_id="2021000000000001",
                         alipay_public_key=testing.public_key_pem(key))
    body = testing.make_notify(key, app_id="2021000000000001", out_trade_no="order-1")
    response = client.post("/shop/notify", content=body,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.text == "success"

Certificate mode (公钥证书模式) takes a certificate in place of the key:

    notifier.add_account("shop", "alipay", app_id="2021000000000001",
                         alipay_public_cert=testing.certificate_pem(key, chain=True))

Signing uses the content rule verification uses (`sign()` beside `verify()`), so a helper cannot
drift from the verifier unnoticed: the real vectors in the test suite pin both to Alipay.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.x509.oid import NameOID

from paynotify import BEIJING
from paynotify_alipay._form import python_charset
from paynotify_alipay._signature import SignType, sign, sign_content

if TYPE_CHECKING:
    from paynotify_alipay._emulator import AlipayEmulator, local_emulator

__all__ = [
    "BUYER_ID",
    "PROVIDER_SIDE_KEY",
    "SELLER_ID",
    "AlipayEmulator",
    "certificate_pem",
    "encode_form",
    "generate_key",
    "local_emulator",
    "make_notify",
    "make_return",
    "private_key_pem",
    "public_key_pem",
    "sign_fields",
]

SELLER_ID = "2088000000000001"
"""The seller_id (merchant PID) the helpers put in notifications unless told otherwise."""
BUYER_ID = "2088000000000002"
PROVIDER_SIDE_KEY = "keys/provider-side/alipay_private_key.pem"
"""Where `paynotify init` writes Alipay's side of the key pair (relative to the service's directory)."""

_TIME = "%Y-%m-%d %H:%M:%S"
_PAID = ("TRADE_SUCCESS", "TRADE_FINISHED")


def generate_key() -> RSAPrivateKey:
    """A fresh 2048-bit RSA key standing in for Alipay's signing key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_key_pem(private_key: RSAPrivateKey) -> str:
    """The PEM public key to configure as the account's `alipay_public_key`."""
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def certificate_pem(
    key: RSAPrivateKey | RSAPublicKey,
    *,
    chain: bool = False,
    serial_number: int | None = None,
    expired: bool = False,
) -> str:
    """A throwaway certificate of `key`, shaped like Alipay's alipayCertPublicKey_RSA2.crt (PEM).

    From a private key it is self-signed. From a public key alone (a real Alipay key, say, to
    run real notifications through certificate mode), or with `chain=True`, a fresh throwaway CA
    issues it; `chain=True` also appends the CA's certificate, leaf first as in Alipay's file.
    `expired=True` makes one that expired yesterday: certificate mode never checks expiry.
    """
    public = key if isinstance(key, RSAPublicKey) else key.public_key()
    valid_days = (-400, -1) if expired else (-1, 365)  # relative to now: from, until
    if isinstance(key, RSAPrivateKey) and not chain:
        return _pem(_issue(_LEAF_NAME, public, _LEAF_NAME, key, serial_number, valid_days))
    ca_key = generate_key()
    ca = _issue(_CA_NAME, ca_key.public_key(), _CA_NAME, ca_key, None, (-1, 3650), is_ca=True)
    leaf = _pem(_issue(_LEAF_NAME, public, _CA_NAME, ca_key, serial_number, valid_days))
    return leaf + _pem(ca) if chain else leaf


_LEAF_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paynotify test"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Alipay"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"支付宝(中国)网络技术有限公司-{SELLER_ID}"),
    ]
)
_CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ant Financial (paynotify test)"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Certification Authority"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Ant Financial Certification Authority Class 2 R1 (test)"),
    ]
)


def _issue(
    subject: x509.Name,
    public: RSAPublicKey,
    issuer: x509.Name,
    signer: RSAPrivateKey,
    serial_number: int | None,
    valid_days: tuple[int, int],
    is_ca: bool = False,
) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(serial_number if serial_number is not None else x509.random_serial_number())
        .not_valid_before(now + timedelta(days=valid_days[0]))
        .not_valid_after(now + timedelta(days=valid_days[1]))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def private_key_pem(private_key: RSAPrivateKey) -> str:
    """The PKCS#8 PEM of a throwaway key (for feeding other SDKs in interop tests)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def sign_fields(
    fields: Mapping[str, str],
    private_key: RSAPrivateKey,
    sign_type: SignType = "RSA2",
    charset: str = "utf-8",
) -> str:
    """The base64 `sign` for `fields` (decoded text) under the V1 rule, in `charset`'s bytes."""
    codec = python_charset(charset)
    return sign(
        sign_content({k.encode(codec): v.encode(codec) for k, v in fields.items()}), private_key, sign_type
    )


def encode_form(fields: Mapping[str, str], charset: str = "utf-8") -> bytes:
    """x-www-form-urlencoded as Alipay sends it: bytes of `charset`, space as `+`, `+` as `%2B`."""
    return urlencode(list(fields.items()), quote_via=quote_plus, encoding=python_charset(charset)).encode(
        "ascii"
    )


def _signed(
    fields: dict[str, str | None], private_key: RSAPrivateKey, sign_type: SignType, charset: str
) -> bytes:
    present = {k: v for k, v in fields.items() if v is not None}
    present["sign"] = sign_fields(present, private_key, sign_type, charset)
    return encode_form(present, charset)


def _trade_no(app_id: str, out_trade_no: str) -> str:
    # Derived, not random: every notification for one order names the same Alipay trade.
    digest = int.from_bytes(hashlib.sha256(f"{app_id}\x1f{out_trade_no}".encode()).digest()[:8], "big")
    return f"2024010122001{digest % 10**15:015d}"


def make_notify(
    private_key: RSAPrivateKey,
    *,
    app_id: str,
    out_trade_no: str,
    total_amount: str = "88.88",
    trade_status: str | None = "TRADE_SUCCESS",
    charset: str = "utf-8",
    sign_type: SignType = "RSA2",
    **extra: str | None,
) -> bytes:
    """The POST body of an async notification (notify_url), signed with `private_key`.

    It has every field Alipay always sends plus the usual payment fields, with times of now
    (Beijing) and a fresh notify_id. `extra` adds or overrides fields (for a refund: refund_fee,
    gmt_refund, out_biz_no); None removes one, as does `trade_status=None`.
    """
    now = datetime.now(BEIJING).replace(microsecond=0)
    refund = extra.get("refund_fee") is not None
    paid = trade_status in _PAID or refund
    fields: dict[str, str | None] = {
        "gmt_create": f"{now - timedelta(seconds=30):{_TIME}}",
        "charset": charset,
        "gmt_payment": f"{now - timedelta(seconds=20):{_TIME}}" if paid else None,
        "gmt_close": f"{now:{_TIME}}" if trade_status in ("TRADE_CLOSED", "TRADE_FINISHED") else None,
        "notify_time": f"{now:{_TIME}}",
        "subject": "paynotify test order",
        "buyer_id": BUYER_ID,
        "invoice_amount": total_amount if paid else None,
        "version": "1.0",
        "notify_id": f"{secrets.randbelow(10**34):034d}",
        "fund_bill_list": json.dumps(
            [{"amount": total_amount, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")
        )
        if paid
        else None,
        "notify_type": "trade_status_sync",
        "out_trade_no": out_trade_no,
        "total_amount": total_amount,
        "trade_status": trade_status,
        "trade_no": _trade_no(app_id, out_trade_no),
        "auth_app_id": app_id,
        "receipt_amount": total_amount if paid else None,
        "point_amount": "0.00" if paid else None,
        "app_id": app_id,
        "buyer_pay_amount": total_amount if paid else None,
        "sign_type": sign_type,
        "seller_id": SELLER_ID,
    }
    fields.update(extra)
    return _signed(fields, private_key, sign_type, charset)


def make_return(
    private_key: RSAPrivateKey,
    *,
    app_id: str,
    out_trade_no: str,
    total_amount: str = "88.88",
    charset: str = "utf-8",
    sign_type: SignType = "RSA2",
    method: str = "alipay.trade.page.pay.return",
    **extra: str | None,
) -> bytes:
    """The query string of a sync return (return_url, GET) after page pay, signed with `private_key`.

    `extra` adds or overrides fields; None removes one. It carries no trade_status, as Alipay's.
    """
    now = datetime.now(BEIJING).replace(microsecond=0)
    fields: dict[str, str | None] = {
        "charset": charset,
        "out_trade_no": out_trade_no,
        "method": method,
        "total_amount": total_amount,
        "trade_no": _trade_no(app_id, out_trade_no),
        "auth_app_id": app_id,
        "version": "1.0",
        "app_id": app_id,
        "sign_type": sign_type,
        "seller_id": SELLER_ID,
        "timestamp": f"{now:{_TIME}}",
    }
    fields.update(extra)
    return _signed(fields, private_key, sign_type, charset)


def __getattr__(name: str) -> Any:
    # The emulator (a local Alipay gateway, _emulator) builds on the helpers above: imported on
    # first use, so neither module has to be imported before the other.
    if name == "AlipayEmulator":
        from paynotify_alipay._emulator import AlipayEmulator

        return AlipayEmulator
    if name == "local_emulator":
        from paynotify_alipay._emulator import local_emulator

        return local_emulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
