"""The certificates UnionPay signs with, and whether a 5.1.0 message's `signPubKeyCert` is trusted.

5.1.0 messages carry their signing certificate. It is trusted when, at the provider's clock, it is
within its validity, it was issued by the environment's middle certificate (acp_*_middle.cer),
which was issued by its root (acp_*_root.cer), and the third `@` field of its CN names UnionPay.
CFCA signs this chain with SHA1-RSA, which cryptography's `verify_directly_issued_by` refuses, so
each link's signature is checked here with `public_key().verify`. The middle -> root link and the
CA flags are configuration: they are checked once, when the account is added.

A certificate is parsed once per distinct PEM (a bounded LRU cache keyed by the exact bytes), not
once per notification: UnionPay sends the same one in every message for years.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.x509.oid import NameOID

from paynotify import VerificationError

__all__ = [
    "CERT_CACHE_SIZE",
    "TEST_CN_ORG",
    "UNIONPAY_CN_ORG",
    "Certificate",
    "Environment",
    "TrustChain",
    "bundled_pem",
    "load_certificate",
    "parse_signing_certificate",
]

Environment = Literal["production", "test"]

UNIONPAY_CN_ORG = "中国银联股份有限公司"
"""The third `@` field of the CN of every UnionPay signing certificate (production and, today, test)."""
TEST_CN_ORG = "00040000:SIGN"
"""What older test-environment signing certificates carry there instead: accepted in `test` only."""
CERT_CACHE_SIZE = 64
"""Distinct signing certificates kept parsed: UnionPay uses one or two at a time (a rotation)."""

_PKCS1 = padding.PKCS1v15()
_MIN_KEY_BITS = 2048
# CFCA's chains are SHA1-RSA; a newer one may be SHA-256. Anything else is not UnionPay's.
_LINK_HASHES = (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512)
_BUNDLED = {"production": "acp_prod", "test": "acp_test"}
_UNREADABLE = "is not a readable X.509 certificate (damaged or truncated?)"


def bundled_pem(environment: Environment, which: Literal["root", "middle"]) -> bytes:
    """UnionPay's CFCA `root` or `middle` certificate of `environment`, as shipped in this package."""
    return files("paynotify_unionpay").joinpath(f"certs/{_BUNDLED[environment]}_{which}.cer").read_bytes()


@dataclass(frozen=True, slots=True)
class Certificate:
    """One parsed certificate, with everything verification reads from it, read once.

    cryptography parses some parts lazily: reading them all here keeps a damaged certificate
    from failing later, inside a check, with an ASN.1 error.
    """

    cert: x509.Certificate = field(repr=False)
    key: RSAPublicKey = field(repr=False)
    serial: str
    """The serial number in decimal: UnionPay's `certId`."""
    subject: str
    issuer: x509.Name = field(repr=False)
    subject_name: x509.Name = field(repr=False)
    not_before: float
    not_after: float
    signature_hash: hashes.HashAlgorithm | None = field(repr=False)
    cn_org: str | None
    """The third `@` field of the CN (`041@8310000000083040@中国银联股份有限公司@00016495`), if any."""
    is_ca: bool

    @property
    def size_bytes(self) -> int:
        return (self.key.key_size + 7) // 8

    def validity(self) -> str:
        return f"{_utc(self.not_before)} to {_utc(self.not_after)}"


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cn_org(name: x509.Name) -> str | None:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or not isinstance(cns[0].value, str):
        return None
    parts = cns[0].value.split("@")
    return parts[2] if len(parts) > 2 else None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _signature_hash(cert: x509.Certificate) -> hashes.HashAlgorithm | None:
    try:
        return cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None


def _from_x509(cert: x509.Certificate) -> Certificate:
    # Damaged DER surfaces as ValueError, UnsupportedAlgorithm, DuplicateExtension...: all unreadable.
    try:
        key = cert.public_key()
    except Exception:
        raise ValueError(_UNREADABLE) from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("holds a non-RSA key; UnionPay signs with RSA")
    if key.key_size < _MIN_KEY_BITS:
        raise ValueError(f"holds a {key.key_size}-bit RSA key; UnionPay's are {_MIN_KEY_BITS} bits or more")
    try:
        cert.tbs_certificate_bytes  # noqa: B018  # parsed now, not inside a check
        return Certificate(
            cert=cert,
            key=key,
            serial=str(cert.serial_number),
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer,
            subject_name=cert.subject,
            not_before=cert.not_valid_before_utc.timestamp(),
            not_after=cert.not_valid_after_utc.timestamp(),
            signature_hash=_signature_hash(cert),
            cn_org=_cn_org(cert.subject),
            is_ca=_is_ca(cert),
        )
    except Exception:
        raise ValueError(_UNREADABLE) from None


def _parse(data: bytes) -> Certificate:
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(_UNREADABLE) from None
    if len(certs) != 1:
        raise ValueError("holds several certificates; give one per setting")
    return _from_x509(certs[0])


def load_certificate(value: str | bytes | Path) -> Certificate:
    """A certificate from PEM text, DER or PEM bytes, or a path to a .cer file (PEM or DER).

    Text holding "-----BEGIN" is content; other text on one line is a path. Raises ValueError with
    a message that never repeats content (a path, which is no secret, is named).
    """
    if isinstance(value, str) and "-----BEGIN" not in value:
        path = value.strip()
        if not path or "\n" in path or len(path) > 4096:
            raise ValueError("is neither PEM (no '-----BEGIN CERTIFICATE-----' line) nor a file path")
        value = Path(path)
    if isinstance(value, Path):
        try:
            value = value.expanduser().read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ValueError(f"is not PEM, so it was read as a path: {str(value)!r}: {reason}") from None
    data = value.encode("utf-8") if isinstance(value, str) else value
    if b"PRIVATE KEY" in data:
        raise ValueError("holds a private key; it takes UnionPay's certificate (never a private key)")
    return _parse(data)


# Exactly one certificate, nothing before or after it (a final line break allowed): cryptography
# reads the first PEM block and ignores what follows, so a value that swallowed the fields signed
# after it (`...-----END CERTIFICATE-----&traceNo=...`) would still load. Base64 lines hold no `-`,
# so one BEGIN/END pair is all this admits.
_ONE_PEM = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n"
    rb"(?:[A-Za-z0-9+/=]{1,76}\r?\n){1,100}"
    rb"-----END CERTIFICATE-----(?:\r?\n)?"
).fullmatch


@functools.lru_cache(maxsize=CERT_CACHE_SIZE)
def _cached(pem: bytes) -> Certificate | str:
    # A refusal is cached too (as its reason): a sender repeating a bad certificate costs nothing.
    if _ONE_PEM(pem) is None:
        return (
            "signPubKeyCert is not exactly one PEM certificate (one BEGIN/END pair of base64 lines, "
            "nothing before or after it)"
        )
    try:
        return _parse(pem)
    except ValueError as exc:
        return f"signPubKeyCert {exc}"


def parse_signing_certificate(pem: bytes) -> Certificate:
    """The certificate a 5.1.0 message carries in `signPubKeyCert` (exact bytes), parsed once per
    distinct value; VerificationError when it cannot be read."""
    parsed = _cached(pem)
    if isinstance(parsed, str):
        raise VerificationError(parsed)
    return parsed


def _signed_by(child: Certificate, issuer: Certificate) -> str | None:
    """Why `issuer` did not issue `child`, or None when it did (names and RSA PKCS#1 v1.5 signature)."""
    if child.issuer != issuer.subject_name:
        return f"its issuer is {child.issuer.rfc4514_string()!r}, not {issuer.subject!r}"
    algorithm = child.signature_hash
    if algorithm is None or not isinstance(algorithm, _LINK_HASHES):
        return "it is not signed with RSA and SHA-1 or SHA-2"
    try:
        issuer.key.verify(child.cert.signature, child.cert.tbs_certificate_bytes, _PKCS1, algorithm)
    except InvalidSignature:
        return f"its signature does not verify with the key of {issuer.subject!r}"
    return None


@dataclass(frozen=True, slots=True)
class TrustChain:
    """An account's anchors for 5.1.0: the middle and root certificates, and the CN orgs it accepts."""

    environment: Environment
    root: Certificate
    middle: Certificate
    cn_orgs: frozenset[str]
    _links: dict[int, tuple[Certificate, str | None]] = field(default_factory=dict, compare=False, repr=False)
    """leaf -> why the middle did not issue it (None: it did), per distinct parsed leaf. The answer
    depends on the two certificates alone, and an RSA verification per notification doubled the
    cost of verifying one; the leaf's validity and CN are still checked on every message."""

    @classmethod
    def build(
        cls, environment: Environment, root: Certificate, middle: Certificate, cn_orgs: Iterable[str]
    ) -> TrustChain:
        """Check the anchors themselves (ValueError naming the link): done once, at configuration."""
        if not root.is_ca:
            raise ValueError(f"root certificate {root.subject!r} is not a CA certificate")
        if not middle.is_ca:
            raise ValueError(f"middle certificate {middle.subject!r} is not a CA certificate")
        problem = _signed_by(middle, root)
        if problem is not None:
            raise ValueError(
                f"chain link middle -> root failed: middle certificate {middle.subject!r}: {problem}"
            )
        return cls(environment, root, middle, frozenset(cn_orgs))

    def _link(self, leaf: Certificate) -> str | None:
        # Keyed by identity, the leaf held in the value: parsed leaves are themselves cached once per
        # distinct PEM, so the same certificate arrives as the same object.
        found = self._links.get(id(leaf))
        if found is None or found[0] is not leaf:
            if len(self._links) >= CERT_CACHE_SIZE:
                self._links.clear()
            found = self._links[id(leaf)] = (leaf, _signed_by(leaf, self.middle))
        return found[1]

    def check(self, leaf: Certificate, now: float) -> None:
        """Trust `leaf` at `now` (unix seconds), or raise VerificationError saying which link failed."""
        name = f"signPubKeyCert (certId {leaf.serial}, {leaf.subject!r})"
        if not leaf.not_before <= now <= leaf.not_after:
            state = "not yet valid" if now < leaf.not_before else "expired"
            raise VerificationError(f"{name} is {state}: valid {leaf.validity()}, now is {_utc(now)}")
        problem = self._link(leaf)
        if problem is not None:
            raise VerificationError(
                f"chain link leaf -> middle failed ({self.environment} middle certificate): {name}: {problem}"
            )
        for which, anchor in (("middle", self.middle), ("root", self.root)):
            if not anchor.not_before <= now <= anchor.not_after:
                raise VerificationError(
                    f"chain link {which} failed: the {self.environment} {which} certificate "
                    f"{anchor.subject!r} is not valid now (valid {anchor.validity()})"
                )
        org = leaf.cn_org
        if org not in self.cn_orgs:
            accepted = " or ".join(repr(o) for o in sorted(self.cn_orgs))
            raise VerificationError(
                f"CN check failed: {name}: the CN's third '@' field is {org!r}, not {accepted} "
                f"(environment {self.environment!r})"
            )
