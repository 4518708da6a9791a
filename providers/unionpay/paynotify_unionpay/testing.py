"""Genuinely signed UnionPay notifications, made with a throwaway CFCA-like chain, for tests and demos.

    from paynotify_unionpay import testing

    chain = testing.generate_chain()           # root -> middle -> leaf with UnionPay's CN, SHA1-RSA
    notifier.add_account("shop", "unionpay", mer_id=testing.MER_ID, **chain.account_settings())
    body = testing.make_notify(chain, mer_id=testing.MER_ID, order_id="order20260101001", txn_amt="8888")
    response = client.post("/shop/notify", content=body,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert (response.status_code, response.text) == (200, "ok")

`make_notify(..., version="5.0.0")` signs the older way (SHA-1, `certId` instead of
`signPubKeyCert`); `account_settings()` lists the leaf in `verify_certs` for it. A refund is
`txn_type="04"` (a consume undo `"31"`) with `orig_qry_id=query_id(mer_id, consume_order_id)`.
`chain.with_leaf(...)` issues another leaf from the same middle: expired, not yet valid, or with
another CN. The chain is signed with SHA1-RSA, as CFCA's is (cryptography refuses to issue such
certificates, so they are assembled here).

Signing uses the sign string verification uses (`sign()` beside `verify()`), so a helper cannot
drift from the verifier unnoticed: the real vectors in the test suite pin both to UnionPay.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.x509.oid import NameOID

from paynotify import BEIJING
from paynotify_unionpay._certs import TEST_CN_ORG, UNIONPAY_CN_ORG
from paynotify_unionpay._form import python_encoding
from paynotify_unionpay._signature import Version, sign, sign_string

if TYPE_CHECKING:
    from paynotify_unionpay._emulator import UnionPayEmulator, generate_merchant_certificate, local_emulator

__all__ = [
    "MER_ID",
    "PROVIDER_SIDE_KEY",
    "TEST_CN_ORG",
    "UNIONPAY_CN_ORG",
    "SigningChain",
    "UnionPayEmulator",
    "encode_form",
    "generate_chain",
    "generate_key",
    "generate_merchant_certificate",
    "local_emulator",
    "make_notify",
    "query_id",
    "sign_fields",
]

MER_ID = "777290058110001"
"""The merId (商户号) the examples and the demo use."""
PROVIDER_SIDE_KEY = "keys/provider-side/unionpay_signing_key.pem"
"""Where `paynotify init` writes the key of the chain's leaf, UnionPay's side (relative to the service)."""

CertHash = Literal["sha1", "sha256"]

# sha256WithRSAEncryption and sha1WithRSAEncryption: OIDs of the same length, so the one can
# replace the other inside a to-be-signed certificate without changing any DER length.
_SHA256_RSA_OID = bytes.fromhex("06092a864886f70d01010b")
_SHA1_RSA_OID = bytes.fromhex("06092a864886f70d010105")
_SHA1_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101050500")
_TIME = "%Y%m%d%H%M%S"


def generate_key() -> RSAPrivateKey:
    """A fresh 2048-bit RSA key, standing in for one of UnionPay's or CFCA's."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


_ROOT_NAME = _name(
    (NameOID.COUNTRY_NAME, "CN"),
    (NameOID.ORGANIZATION_NAME, "China Financial Certification Authority (paynotify test)"),
    (NameOID.COMMON_NAME, "CFCA CS CA (paynotify test)"),
)
_MIDDLE_NAME = _name(
    (NameOID.COUNTRY_NAME, "CN"),
    (NameOID.ORGANIZATION_NAME, "China Financial Certification Authority (paynotify test)"),
    (NameOID.COMMON_NAME, "CFCA OCA1 (paynotify test)"),
)


def _leaf_name(cn_org: str) -> x509.Name:
    # As UnionPay's: 041@<id>@<organisation>@<sequence>, the organisation third.
    return _name(
        (NameOID.COUNTRY_NAME, "cn"),
        (NameOID.ORGANIZATION_NAME, "CFCA OCA1"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Local RA OCA1"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Enterprises"),
        (NameOID.COMMON_NAME, f"041@8310000000083040@{cn_org}@00016495"),
    )


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _issue(
    subject: x509.Name,
    key: RSAPrivateKey,
    issuer: x509.Name,
    signer: RSAPrivateKey,
    valid: tuple[datetime, datetime],
    is_ca: bool,
    cert_hash: CertHash,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(10**10 + secrets.randbelow(9 * 10**10))  # 11 digits, as UnionPay's
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=not is_ca)
    )
    certificate = builder.sign(signer, hashes.SHA256())
    if cert_hash == "sha256":
        return certificate
    # cryptography issues nothing with SHA-1: re-sign the same to-be-signed part, naming SHA-1.
    tbs = certificate.tbs_certificate_bytes
    if tbs.count(_SHA256_RSA_OID) != 1:  # pragma: no cover - cryptography changed its output
        raise RuntimeError("cannot re-sign the certificate with SHA-1")
    tbs = tbs.replace(_SHA256_RSA_OID, _SHA1_RSA_OID)
    signature = signer.sign(tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303  # CFCA's chain is SHA1-RSA
    bits = b"\x03" + _der_length(len(signature) + 1) + b"\x00" + signature
    body = tbs + _SHA1_RSA_ALGORITHM + bits
    return x509.load_der_x509_certificate(b"\x30" + _der_length(len(body)) + body)


def _pem(certificate: x509.Certificate, newline: str = "\n") -> str:
    text = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return text if newline == "\n" else text.rstrip("\n").replace("\n", newline)


def _around_now(days_before: int, days_after: int) -> tuple[datetime, datetime]:
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(days=days_before), now + timedelta(days=days_after)


@dataclass(frozen=True)
class SigningChain:
    """A throwaway root -> middle -> leaf chain; the leaf's key signs notifications.

    `leaf_pem` has CRLF line breaks and no final newline, as UnionPay sends `signPubKeyCert`.
    """

    root_key: RSAPrivateKey = field(repr=False)
    root: x509.Certificate = field(repr=False)
    middle_key: RSAPrivateKey = field(repr=False)
    middle: x509.Certificate = field(repr=False)
    leaf_key: RSAPrivateKey = field(repr=False)
    leaf: x509.Certificate = field(repr=False)
    cert_hash: CertHash = "sha1"

    @property
    def root_pem(self) -> str:
        """The root certificate (PEM), an account's `root_cert`."""
        return _pem(self.root)

    @property
    def middle_pem(self) -> str:
        """The middle certificate (PEM), an account's `middle_cert`."""
        return _pem(self.middle)

    @property
    def leaf_pem(self) -> str:
        """The signing certificate, as 5.1.0 messages carry it in `signPubKeyCert`."""
        return _pem(self.leaf, "\r\n")

    @property
    def cert_id(self) -> str:
        """The leaf's serial in decimal: the `certId` of its 5.0.0 messages, and every result's key_id."""
        return str(self.leaf.serial_number)

    def account_settings(self) -> dict[str, Any]:
        """What an account trusting this chain is given: root_cert, middle_cert, and the leaf as
        verify_certs (for 5.0.0 messages)."""
        return {"root_cert": self.root_pem, "middle_cert": self.middle_pem, "verify_certs": [self.leaf_pem]}

    def with_leaf(
        self,
        *,
        cn_org: str = UNIONPAY_CN_ORG,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        key: RSAPrivateKey | None = None,
    ) -> SigningChain:
        """The same root and middle with a new leaf: `cn_org` is the CN's third `@` field
        (TEST_CN_ORG for an old test certificate); validity defaults to yesterday .. a year on."""
        default_from, default_until = _around_now(1, 365)
        leaf_key = key or generate_key()
        valid = (not_before or default_from, not_after or default_until)
        leaf = _issue(
            _leaf_name(cn_org), leaf_key, _MIDDLE_NAME, self.middle_key, valid, False, self.cert_hash
        )
        return replace(self, leaf_key=leaf_key, leaf=leaf)


def generate_chain(*, cn_org: str = UNIONPAY_CN_ORG, cert_hash: CertHash = "sha1") -> SigningChain:
    """A fresh chain: root (10 years) -> middle (5 years) -> leaf (yesterday .. a year on) whose
    CN names `cn_org` (UnionPay's by default), every link signed with `cert_hash` (CFCA's SHA-1)."""
    root_key, middle_key = generate_key(), generate_key()
    root = _issue(_ROOT_NAME, root_key, _ROOT_NAME, root_key, _around_now(1, 3650), True, cert_hash)
    middle = _issue(_MIDDLE_NAME, middle_key, _ROOT_NAME, root_key, _around_now(1, 1825), True, cert_hash)
    placeholder = SigningChain(root_key, root, middle_key, middle, middle_key, middle, cert_hash)
    return placeholder.with_leaf(cn_org=cn_org)


def sign_fields(
    fields: Mapping[str, str], private_key: RSAPrivateKey, version: Version = "5.1.0", encoding: str = "utf-8"
) -> str:
    """The base64 `signature` of `fields` (text; any `signature` among them is left out), in the
    bytes of `encoding`: hex SHA-256 of the sign string then RSA SHA-256 (5.1.0), or SHA-1 (5.0.0)."""
    codec = python_encoding(encoding)
    raw = {k.encode("ascii"): v.encode(codec) for k, v in fields.items()}
    return sign(sign_string(raw), private_key, version)


def encode_form(fields: Mapping[str, str], encoding: str = "utf-8") -> bytes:
    """x-www-form-urlencoded in the bytes of `encoding`, every reserved byte as %XX (space as %20)."""
    codec = python_encoding(encoding)
    return "&".join(f"{k}={quote(v, safe='', encoding=codec)}" for k, v in fields.items()).encode("ascii")


def query_id(mer_id: str, order_id: str) -> str:
    """The queryId the helpers give the transaction of `order_id`: derived, so a refund can name it."""
    digest = int.from_bytes(hashlib.sha256(f"{mer_id}\x1f{order_id}".encode()).digest()[:8], "big")
    return f"{digest % 10**21:021d}"


def make_notify(
    chain: SigningChain,
    *,
    mer_id: str,
    order_id: str,
    txn_amt: str = "8888",
    txn_type: str = "01",
    resp_code: str = "00",
    orig_qry_id: str | None = None,
    version: Version = "5.1.0",
    encoding: str = "utf-8",
    txn_time: datetime | None = None,
    **extra: str | None,
) -> bytes:
    """The POST body of a back-end notification (backUrl; a front return has the same fields),
    signed by `chain`'s leaf.

    A consume (txnType 01) by default, now (Beijing); a refund is `txn_type="04"`, a consume undo
    `"31"`, each with `orig_qry_id`. `extra` adds or overrides fields; None removes one.
    """
    at = (txn_time or datetime.now(BEIJING)).astimezone(BEIJING)
    fields: dict[str, str | None] = {
        "accessType": "0",
        "bizType": "000201",
        "currencyCode": "156",
        "encoding": encoding,
        "merId": mer_id,
        "orderId": order_id,
        "origQryId": orig_qry_id,
        "queryId": query_id(mer_id, order_id),
        "respCode": resp_code,
        "respMsg": "成功[0000000]" if resp_code == "00" else "交易失败",
        "settleAmt": txn_amt,
        "settleCurrencyCode": "156",
        "settleDate": f"{at:%m%d}",
        "signMethod": "01",
        "traceNo": query_id(mer_id, order_id)[-6:],
        "traceTime": f"{at:%m%d%H%M%S}",
        "txnAmt": txn_amt,
        "txnSubType": "01" if txn_type == "01" else "00",
        "txnTime": f"{at:{_TIME}}",
        "txnType": txn_type,
        "version": version,
    }
    if version == "5.1.0":
        fields["signPubKeyCert"] = chain.leaf_pem
    else:
        fields["certId"] = chain.cert_id
    fields.update(extra)
    present = {k: v for k, v in fields.items() if v is not None}
    present["signature"] = sign_fields(present, chain.leaf_key, version, encoding)
    return encode_form(present, encoding)


def __getattr__(name: str) -> Any:
    # The emulator (a local UnionPay gateway, _emulator) builds on the helpers above: imported on
    # first use, so neither module has to be imported before the other.
    if name == "UnionPayEmulator":
        from paynotify_unionpay._emulator import UnionPayEmulator

        return UnionPayEmulator
    if name in ("generate_merchant_certificate", "local_emulator"):
        from paynotify_unionpay import _emulator

        return getattr(_emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
