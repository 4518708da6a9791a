"""Alipay certificate mode (公钥证书模式): certificate files, and the SNs Alipay names them by.

Cert SN = md5(issuer + serial), lower-case hex, where `serial` is the serial number in decimal and
`issuer` is the issuer DN exactly as Java's `X500Principal.getName()` (RFC 2253) writes it, since
Alipay computes SNs in Java (alipay-sdk-java `AntCertificationUtil`): RDNs from last to first joined
by ",", the values of a multi-valued RDN joined by "+"; the keywords CN C L ST O OU STREET DC UID,
any other attribute as its dotted OID with "#" + the hex of its DER value (as is a keyword whose
value is not a string type); `,=+<>#;"\\` escaped with a backslash, NUL as `\\00`, leading and
trailing spaces escaped. For Alipay's own issuers (C, O, OU, CN in plain ASCII) this is the
string the PHP (openssl_x509_parse, reversed), Go (pkix.Name.String) and Python SDKs build too.

Root SN = the SNs of the certificates of a root bundle whose signature algorithm is RSA (OID under
1.2.840.113549.1.1), joined with "_" in file order. Alipay's alipayRootCert.crt also holds an SM2
root and an ECDSA root, which it leaves out.

SNs are read from the DER directly: `cryptography` refuses to load the ECDSA root of Alipay's
bundle (its signature AlgorithmIdentifier carries a NULL parameter), which Java accepts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from paynotify_alipay._signature import AlipayPublicKey

__all__ = [
    "cert_sn",
    "load_alipay_certificate",
    "load_root_cert_sn",
    "read_certificates",
    "root_cert_sn",
    "sn_text",
]

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_DAMAGED = "is not a well-formed X.509 certificate (damaged or truncated?)"

_SEQUENCE, _SET, _INTEGER, _OID, _VERSION = 0x30, 0x31, 0x02, 0x06, 0xA0
# Java's AVAKeyword names in RFC 2253 form; every other attribute type is written as its OID.
_KEYWORDS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
}
# The value types Java writes as text (AVA.isDerString, non-canonical): Printable, T61, IA5,
# General, BMP and UTF8 strings. Java decodes all of them as UTF-8 bytes, even BMPString.
_TEXT_TAGS = frozenset({0x13, 0x14, 0x16, 0x1B, 0x1E, 0x0C})
_ESCAPED = ',=+<>#;"\\'
# Java tests the OID with startsWith("1.2.840.113549.1.1"), without a trailing dot; so do we.
_RSA_SIGNATURE_ARC = "1.2.840.113549.1.1"


@dataclass(frozen=True, slots=True)
class _Tlv:
    tag: int
    raw: bytes
    content: bytes


def _read(data: bytes, pos: int = 0) -> tuple[_Tlv, int]:
    """One DER tag-length-value at `pos`, and the position after it."""
    if pos + 2 > len(data) or data[pos] & 0x1F == 0x1F:  # no high tag numbers in a certificate
        raise ValueError(_DAMAGED)
    length, head = data[pos + 1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:  # 0 is BER's indefinite length, never DER
            raise ValueError(_DAMAGED)
        length, head = int.from_bytes(data[pos + 2 : pos + 2 + count], "big"), 2 + count
    end = pos + head + length
    if end > len(data):
        raise ValueError(_DAMAGED)
    return _Tlv(data[pos], data[pos:end], data[pos + head : end]), end


def _children(tlv: _Tlv) -> list[_Tlv]:
    items, pos = [], 0
    while pos < len(tlv.content):
        item, pos = _read(tlv.content, pos)
        items.append(item)
    return items


def _oid(content: bytes) -> str:
    arcs, value = [], 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or content[-1] & 0x80:
        raise ValueError(_DAMAGED)
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))


def _parts(der: bytes) -> tuple[_Tlv, _Tlv, str]:
    """(serialNumber, issuer, signature algorithm OID) of one DER certificate."""
    certificate, end = _read(der)
    fields = _children(certificate) if certificate.tag == _SEQUENCE and end == len(der) else []
    if len(fields) != 3 or fields[0].tag != _SEQUENCE or fields[1].tag != _SEQUENCE:
        raise ValueError(_DAMAGED)
    tbs = _children(fields[0])
    if tbs and tbs[0].tag == _VERSION:
        tbs = tbs[1:]
    algorithm = _children(fields[1])
    if len(tbs) < 3 or tbs[0].tag != _INTEGER or tbs[2].tag != _SEQUENCE or not algorithm:
        raise ValueError(_DAMAGED)
    if algorithm[0].tag != _OID:
        raise ValueError(_DAMAGED)
    return tbs[0], tbs[2], _oid(algorithm[0].content)


def _escape(text: str) -> str:
    escaped = "".join("\\00" if ch == "\0" else "\\" + ch if ch in _ESCAPED else ch for ch in text)
    # Then, as Java does, a backslash before each leading and trailing space (or CR).
    lead = len(escaped) - len(escaped.lstrip(" \r"))
    end = max(len(escaped.rstrip(" \r")), lead)
    return (
        "".join("\\" + ch for ch in escaped[:lead])
        + escaped[lead:end]
        + "".join("\\" + ch for ch in escaped[end:])
    )


def _attribute(ava: _Tlv) -> str:
    parts = _children(ava) if ava.tag == _SEQUENCE else []
    if len(parts) != 2 or parts[0].tag != _OID:
        raise ValueError(_DAMAGED)
    oid, value = _oid(parts[0].content), parts[1]
    keyword = _KEYWORDS.get(oid)
    if keyword is None or value.tag not in _TEXT_TAGS:
        return f"{keyword or oid}=#{value.raw.hex()}"
    return f"{keyword}={_escape(value.content.decode('utf-8', 'replace'))}"


def _issuer(name: _Tlv) -> str:
    rdns = []
    for rdn in _children(name):
        if rdn.tag != _SET:
            raise ValueError(_DAMAGED)
        rdns.append("+".join(_attribute(ava) for ava in _children(rdn)))
    return ",".join(reversed(rdns))


def sn_text(der: bytes) -> str:
    """The text a cert SN is the md5 of: Java's issuer string, then the decimal serial number."""
    serial, issuer, _ = _parts(der)
    return _issuer(issuer) + str(int.from_bytes(serial.content, "big", signed=True))


def _sn(der: bytes) -> str:
    # md5 here names a certificate the way Alipay does; it protects nothing.
    return hashlib.md5(sn_text(der).encode("utf-8"), usedforsecurity=False).hexdigest()


def _der_blocks(data: bytes) -> list[bytes]:
    text = data.decode("ascii", "replace")
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks and "-----BEGIN" not in text:
        return [data]  # a binary (DER) .cer file holds one certificate
    ders = []
    for block in blocks:
        label = block.group(1)
        if "PRIVATE KEY" in label:
            raise ValueError("holds a private key; it takes certificates only (never a private key)")
        if label != "CERTIFICATE":
            raise ValueError(f"holds a PEM {label}, not a CERTIFICATE")
        try:
            ders.append(base64.b64decode(re.sub(r"\s+", "", block.group(2)), validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("holds a PEM CERTIFICATE that is not valid base64") from None
    if not ders:
        raise ValueError("has a '-----BEGIN' line but no complete PEM CERTIFICATE")
    return ders


def read_certificates(value: str | bytes | Path) -> list[bytes]:
    """The DER certificates of PEM text (one or several), DER bytes, or a path to a file of either.

    Text holding "-----BEGIN" is content; other text on one line is a path. Raises ValueError with
    a message that never repeats content (a path, which is no secret, is named).
    """
    if isinstance(value, str) and "-----BEGIN" not in value:
        path = value.strip()
        if not path:
            raise ValueError("is empty")
        if "\n" in path or len(path) > 4096:
            raise ValueError("is neither PEM (no '-----BEGIN CERTIFICATE-----' line) nor a file path")
        value = Path(path)
    if isinstance(value, Path):
        try:
            value = value.expanduser().read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ValueError(f"is not PEM, so it was read as a path: {str(value)!r}: {reason}") from None
    data = value.encode("utf-8") if isinstance(value, str) else value
    if not data.strip():
        raise ValueError("is empty")
    return _der_blocks(data)


def cert_sn(pem: str | bytes) -> str:
    """Alipay's SN of the first certificate in `pem` (alipay_cert_sn, app_cert_sn): 32 lower hex.

    `pem` is the certificate text (a chain file is fine: its first certificate counts).
    """
    return _sn(_der_blocks(pem.encode("utf-8") if isinstance(pem, str) else pem)[0])


def root_cert_sn(pem_bundle: str | bytes) -> str:
    """Alipay's alipay_root_cert_sn of a root bundle: the RSA-signed certificates' SNs joined by "_"."""
    return _root_sn(_der_blocks(pem_bundle.encode("utf-8") if isinstance(pem_bundle, str) else pem_bundle))


def load_root_cert_sn(value: str | bytes | Path) -> str:
    """`root_cert_sn` of a root bundle given as content or as a path (alipay_root_cert)."""
    return _root_sn(read_certificates(value))


def _root_sn(ders: list[bytes]) -> str:
    sns = [_sn(der) for der in ders if _parts(der)[2].startswith(_RSA_SIGNATURE_ARC)]
    if not sns:
        raise ValueError("holds no RSA-signed certificate (Alipay's root SN counts only those)")
    return "_".join(sns)


def load_alipay_certificate(value: str | bytes | Path) -> AlipayPublicKey:
    """The public key of the first certificate (Alipay's alipayCertPublicKey_RSA2.crt is leaf first),
    named by its cert SN. Expiry and chain are not checked: Alipay's notifications name no
    certificate and the sandbox's expired long ago, so only the key matters."""
    first = read_certificates(value)[0]
    sn = _sn(first)  # also proves the structure before cryptography reads it
    try:
        key = x509.load_der_x509_certificate(first).public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("has a first certificate whose public key cannot be read (not RSA?)") from None
    if not isinstance(key, RSAPublicKey):
        kind = "an EC" if isinstance(key, ec.EllipticCurvePublicKey) else "a non-RSA"
        raise ValueError(
            f"has a first certificate with {kind} key; Alipay signs notifications with RSA "
            "(its certificate is alipayCertPublicKey_RSA2.crt)"
        )
    return AlipayPublicKey(key, sn, from_certificate=True, cert_sn=sn)
