"""Certificate mode (公钥证书模式): cert SNs against published values and the JDK, certificate
files as settings, key and certificate side by side, key_id, and rotation without downtime."""

from __future__ import annotations

import datetime
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from _alipay_keys import (
    APP_ID,
    VECTOR_APP_ID,
    VECTOR_SELLER_ID,
    VECTORS,
    account,
    cert,
    key,
    parse,
    pem,
    vector,
    vector_cert,
    vector_key,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from paynotify_alipay import AlipaySettings, cert_sn, root_cert_sn, testing
from paynotify_alipay._certs import read_certificates, sn_text
from paynotify_alipay._signature import WRONG_CERT_HINT, WRONG_KEY_HINT
from paynotify_alipay.testing import make_notify, make_return
from pydantic import ValidationError

from paynotify import ConfigurationError, Notifier, PaymentResult, VerificationError

FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
ROOT_SN = "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6"
# Published (certificate, SN) pairs; see tests/vectors/alipay/PROVENANCE.md.
PUBLISHED_SNS = {
    "sandbox_app_public_cert.crt": "e90dd23a37c5c7b616e003970817ff82",
    "gopay_app_cert_public_key.crt": "4498aaa8ab0c8986c15c41b36186db7d",
}
# The ECDSA root "Ant Financial E1" of alipayRootCert.crt, by the JDK's SN rule: never in the root SN.
E1_SN = "8af620707e5ddd8c7e76747e86a604dc"


def notify(signer: str = "alipay") -> bytes:
    return make_notify(key(signer), app_id=APP_ID, out_trade_no="order-1")


def cert_account(certs: str | Path | list[str | Path], **settings: Any) -> Any:
    return account(alipay_public_key=None, alipay_public_cert=certs, **settings)


def independent_sn(certificate: x509.Certificate) -> str:
    """The SN by cryptography's own RFC 4514 string: the same as Java's for plain ASCII issuers."""
    text = certificate.issuer.rfc4514_string() + str(certificate.serial_number)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def sn_of(der: bytes) -> str:
    return hashlib.md5(sn_text(der).encode(), usedforsecurity=False).hexdigest()


def first(pem_text: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem_text.encode())[0]


# -- SN functions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), PUBLISHED_SNS.items())
def test_cert_sn_matches_published_pairs(name: str, expected: str) -> None:
    assert cert_sn(vector_cert(name)) == expected
    assert cert_sn(vector_cert(name).encode()) == expected


def test_root_cert_sn_matches_alipays_published_root_sn() -> None:
    assert root_cert_sn(vector_cert("alipay_root_cert.crt")) == ROOT_SN


def test_root_cert_sn_counts_only_rsa_signed_roots() -> None:
    bundle = vector_cert("alipay_root_cert.crt")
    sns = [
        hashlib.md5(sn_text(d).encode(), usedforsecurity=False).hexdigest() for d in read_certificates(bundle)
    ]
    assert len(sns) == 4  # SM2, RSA R1, ECDSA E1, RSA iTrusChina
    assert sns[2] == E1_SN
    assert root_cert_sn(bundle) == f"{sns[1]}_{sns[3]}"
    assert E1_SN not in root_cert_sn(bundle)
    # cryptography cannot even load E1 (NULL parameter in its ECDSA AlgorithmIdentifier), which is
    # why SNs are read from the DER directly.
    with pytest.raises(ValueError, match="asn1"):
        x509.load_pem_x509_certificates(bundle.encode())


def test_root_cert_sn_is_line_ending_and_spacing_blind() -> None:
    bundle = vector_cert("alipay_root_cert.crt")
    assert root_cert_sn(bundle.replace("\n", "\r\n")) == ROOT_SN
    assert root_cert_sn("subject=...\n" + bundle.replace("\n\n", "\n")) == ROOT_SN


def test_cert_sn_takes_the_first_certificate_of_a_chain() -> None:
    chain = cert("alipay", chain=True)
    leaf, ca = x509.load_pem_x509_certificates(chain.encode())
    assert cert_sn(chain) == independent_sn(leaf) != independent_sn(ca)
    assert leaf.issuer == ca.subject


def test_cert_sn_agrees_with_an_independent_computation() -> None:
    for pem_text in (cert("alipay"), cert("other", chain=True), vector_cert()):
        assert cert_sn(pem_text) == independent_sn(first(pem_text))
    # The expired sandbox certificate, by the rule pinned above with the same issuer ("Class 2 R1 test").
    assert cert_sn(vector_cert()) == "6f1e366a31d9575cd546914add04f4af"


def _awkward_issuer_certificate() -> str:
    """A certificate whose issuer exercises every rule of Java's RFC 2253 form."""
    a, rdn = x509.NameAttribute, x509.RelativeDistinguishedName
    issuer = x509.Name(
        [
            rdn([a(NameOID.COUNTRY_NAME, "CN")]),
            rdn([a(NameOID.DOMAIN_COMPONENT, "example")]),
            rdn(
                [
                    a(NameOID.ORGANIZATION_NAME, 'Ant, Financial + "Test"'),
                    a(NameOID.ORGANIZATIONAL_UNIT_NAME, " x;<y>=#1 "),
                ]
            ),
            rdn([a(NameOID.STATE_OR_PROVINCE_NAME, "浙江省")]),
            rdn([a(NameOID.EMAIL_ADDRESS, "ca@example.com")]),
            rdn([a(NameOID.SERIAL_NUMBER, "12345")]),
            rdn([a(NameOID.LOCALITY_NAME, "AB", _type=_ASN1Type.BMPString)]),
            rdn([a(NameOID.STREET_ADDRESS, "a\x00b")]),
            rdn([a(NameOID.USER_ID, " #lead\\back")]),
            rdn([a(NameOID.COMMON_NAME, "uni", _type=_ASN1Type.UniversalString)]),
            rdn([a(NameOID.COMMON_NAME, "end \r ")]),
            rdn([a(NameOID.COMMON_NAME, "   ")]),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([a(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(issuer)
        .public_key(key().public_key())
        .serial_number(2**158 + 987654321)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key(), hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_sn_text_is_javas_rfc2253_issuer_then_decimal_serial() -> None:
    # Java: RDNs last to first; multi-valued RDNs in DER (sorted) order joined by "+"; non-keyword
    # types (email, serialNumber) and non-text values (UniversalString) as OID=#hex of the DER
    # value; BMPString bytes read as UTF-8; `,=+<>#;"\` escaped, NUL as \00, leading and trailing
    # spaces and CRs escaped. Confirmed against JDK 17 (see the JDK test below).
    expected = (
        "CN=\\ \\ \\ ,"
        "CN=end\\ \\\r\\ ,"
        "CN=#1c0c000000750000006e00000069,"
        "UID=\\ \\#lead\\\\back,"
        "STREET=a\\00b,"
        "L=\\00A\\00B,"
        "2.5.4.5=#13053132333435,"
        "1.2.840.113549.1.9.1=#160e6361406578616d706c652e636f6d,"
        "ST=浙江省,"
        'OU=\\ x\\;\\<y\\>\\=\\#1\\ +O=Ant\\, Financial \\+ \\"Test\\",'
        "DC=example,"
        "C=CN" + str(2**158 + 987654321)
    )
    [der] = read_certificates(_awkward_issuer_certificate())
    assert sn_text(der) == expected


_JAVA = """
import java.io.ByteArrayInputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Per certificate: signature algorithm OID and md5(getIssuerX500Principal().getName() + serial). */
public class CertSn {
    public static void main(String[] args) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        String pemBlock = "-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----";
        Pattern block = Pattern.compile(pemBlock, Pattern.DOTALL);
        for (String path : args) {
            Matcher m = block.matcher(Files.readString(Path.of(path), StandardCharsets.UTF_8));
            while (m.find()) {
                X509Certificate c;
                try {
                    byte[] pem = m.group().getBytes(StandardCharsets.US_ASCII);
                    c = (X509Certificate) factory.generateCertificate(new ByteArrayInputStream(pem));
                } catch (Exception e) {
                    System.out.println(path + " unreadable -");  // the JDK has no SM2
                    continue;
                }
                String text = c.getIssuerX500Principal().getName() + c.getSerialNumber();
                byte[] md5 = MessageDigest.getInstance("MD5").digest(text.getBytes(StandardCharsets.UTF_8));
                String sn = String.format("%032x", new BigInteger(1, md5));
                System.out.println(path + " " + c.getSigAlgOID() + " " + sn);
            }
        }
    }
}
"""


def _run_jdk(directory: Path, files: list[Path]) -> dict[str, list[tuple[str, str]]]:
    java = shutil.which("java")
    if java is None or shutil.which("javac") is None:
        pytest.skip("no JDK (java and javac) on PATH - SNs not checked against Java")
    source = directory / "CertSn.java"
    source.write_text(_JAVA)
    done = subprocess.run(
        [java, str(source), *map(str, files)], capture_output=True, text=True, timeout=300, check=True
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for line in done.stdout.splitlines():
        path, algorithm, sn = line.split(" ")
        out.setdefault(path, []).append((algorithm, sn))
    return out


def test_sns_agree_with_the_jdk(tmp_path: Path) -> None:
    # Alipay computes SNs in Java (AntCertificationUtil): the JDK is the reference implementation.
    made = {"awkward.pem": _awkward_issuer_certificate(), "chain.pem": cert("alipay", chain=True)}
    for name, text in made.items():
        (tmp_path / name).write_text(text)
    vectors = [
        VECTORS / n for n in (*PUBLISHED_SNS, "sandbox_alipay_public_cert.crt", "alipay_root_cert.crt")
    ]
    files = [*vectors, *(tmp_path / n for n in made)]
    java = _run_jdk(tmp_path, files)
    for path in files:
        ours = [sn_of(der) for der in read_certificates(path)]
        theirs = java[str(path)]
        assert len(ours) == len(theirs), path.name
        for mine, (algorithm, sn) in zip(ours, theirs, strict=True):
            assert algorithm == "unreadable" or mine == sn, path.name
    root = VECTORS / "alipay_root_cert.crt"
    assert java[str(root)][0][0] == "unreadable"  # the SM2 root; the JDK has no SM2
    java_root = [sn for algorithm, sn in java[str(root)] if algorithm.startswith("1.2.840.113549.1.1")]
    assert root_cert_sn(root.read_text()) == "_".join(java_root) == ROOT_SN


def test_sn_functions_refuse_what_is_not_a_certificate() -> None:
    with pytest.raises(ValueError, match="no complete PEM CERTIFICATE"):
        cert_sn("-----BEGIN CERTIFICATE-----\nMIIB")
    with pytest.raises(ValueError, match=r"not a well-formed X\.509"):
        cert_sn(b"\x30\x03\x02\x01\x01")
    with pytest.raises(ValueError, match="PEM PUBLIC KEY"):
        cert_sn(pem())
    ec_only = ec_certificate()
    with pytest.raises(ValueError, match="no RSA-signed certificate"):
        root_cert_sn(ec_only)


def ec_certificate() -> str:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EC root")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ec_key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ec_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


# -- certificate mode: verification ---------------------------------------------------------------


def test_certificate_mode_verifies_genuine_notifications_and_names_the_cert() -> None:
    acct = cert_account(cert())
    result = parse(notify(), acct)
    assert result.is_paid
    assert result.key_id == cert_sn(cert()) == acct.settings.alipay_cert_sn
    assert acct.settings.public_keys[0].cert_sn == result.key_id
    assert acct.settings.alipay_public_key is None
    with pytest.raises(VerificationError) as info:
        parse(notify("stranger"), acct)
    assert f"keys tried: {result.key_id}" in str(info.value)


def test_a_chain_file_verifies_with_its_first_certificate_only() -> None:
    chain = cert("alipay", chain=True)
    assert parse(notify(), cert_account(chain)).key_id == cert_sn(chain)
    # Two self-signed certificates in one file: the second one's key is not trusted.
    two = cert("alipay") + cert("second")
    acct = cert_account(two)
    assert parse(notify(), acct).is_paid
    with pytest.raises(VerificationError):
        parse(notify("second"), acct)


def test_expired_certificate_still_verifies() -> None:
    expired = testing.certificate_pem(key(), expired=True)
    assert first(expired).not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    assert parse(notify(), cert_account(expired)).is_paid


def test_key_and_certificate_at_once_rotation() -> None:
    acct = account(alipay_public_key=pem("old"), alipay_public_cert=cert("new"))
    old, new = parse(notify("old"), acct), parse(notify("new"), acct)
    assert (old.is_paid, new.is_paid) == (True, True)
    assert old.key_id == account(alipay_public_key=pem("old")).settings.public_keys[0].key_id
    assert len(old.key_id or "") == 8
    assert new.key_id == cert_sn(cert("new"))
    with pytest.raises(VerificationError) as info:
        parse(notify("stranger"), acct)
    message = str(info.value)
    assert f"keys tried: {new.key_id}, {old.key_id}" in message
    assert WRONG_KEY_HINT in message
    assert WRONG_CERT_HINT in message


def test_certificate_only_error_gives_the_certificate_hint() -> None:
    # The usual mistake: the app's own certificate (appCertPublicKey_*.crt) instead of Alipay's.
    with pytest.raises(VerificationError) as info:
        parse(notify(), cert_account(cert("merchant-app")))
    assert WRONG_CERT_HINT in str(info.value)
    assert WRONG_KEY_HINT not in str(info.value)
    assert "BEGIN" not in str(info.value)


def test_list_of_certificates_and_duplicates_kept_once() -> None:
    acct = cert_account([cert("old"), cert("new"), cert("new")])
    assert [k.key_id for k in acct.settings.public_keys] == [cert_sn(cert("old")), cert_sn(cert("new"))]
    assert acct.settings.alipay_cert_sn == cert_sn(cert("old"))
    assert parse(notify("old"), acct).key_id == cert_sn(cert("old"))
    assert parse(notify("new"), acct).key_id == cert_sn(cert("new"))


def test_same_key_as_key_and_as_certificate_is_named_by_the_certificate() -> None:
    acct = account(alipay_public_key=pem(), alipay_public_cert=cert())
    assert len(acct.settings.public_keys) == 2
    assert parse(notify(), acct).key_id == cert_sn(cert())


def test_key_mode_result_names_the_key() -> None:
    acct = account()
    result = parse(notify(), acct)
    assert result.key_id == acct.settings.public_keys[0].key_id
    assert acct.settings.alipay_cert_sn is None
    assert acct.settings.alipay_root_cert_sn is None


def test_certificate_files_by_path(tmp_path: Path) -> None:
    crt = tmp_path / "alipayCertPublicKey_RSA2.crt"
    crt.write_text(cert("alipay", chain=True))
    der = tmp_path / "alipay.cer"
    der.write_bytes(first(cert("new")).public_bytes(serialization.Encoding.DER))
    for value in (str(crt), crt, f"  {crt}\n"):
        assert parse(notify(), cert_account(value)).key_id == cert_sn(crt.read_text())
    acct = cert_account([crt, str(der)])
    assert parse(notify("new"), acct).key_id == cert_sn(cert("new"))


# -- the real sandbox vectors in certificate mode -------------------------------------------------


def vector_cert_account(**settings: Any) -> Any:
    values: dict[str, Any] = {"alipay_public_key": None, "alipay_public_cert": vector_cert()}
    values.update(settings)
    return account("sandbox", app_id=VECTOR_APP_ID, seller_id=VECTOR_SELLER_ID, **values)


def test_real_sandbox_certificate_verifies_the_real_notification_and_return() -> None:
    acct = vector_cert_account(alipay_root_cert=VECTORS / "alipay_root_cert.crt")
    result = parse(vector("notify_trade_success.form"), acct)
    assert result.is_paid
    assert result.order_id == "1703147160"
    assert result.key_id == cert_sn(vector_cert()) == acct.settings.alipay_cert_sn
    assert acct.settings.alipay_root_cert_sn == ROOT_SN
    returned = parse(vector("return_page_pay.query"), acct, channel="return", method="GET")
    assert returned.key_id == result.key_id
    with pytest.raises(VerificationError):
        parse(vector("notify_trade_success.form").replace(b"total_amount=0.01", b"total_amount=1.00"), acct)


@pytest.mark.parametrize("chain", [False, True], ids=["leaf", "chain"])
def test_vector_key_in_a_self_made_certificate_verifies_the_real_notification(chain: bool) -> None:
    public = serialization.load_pem_public_key(vector_key().encode())
    made = testing.certificate_pem(public, chain=chain)  # type: ignore[arg-type]
    assert first(made).public_key() == public
    result = parse(vector("notify_trade_success.form"), vector_cert_account(alipay_public_cert=made))
    assert result.is_paid
    assert result.key_id == cert_sn(made)


def test_app_certificate_vector_does_not_verify_alipays_notification() -> None:
    acct = vector_cert_account(alipay_public_cert=vector_cert("sandbox_app_public_cert.crt"))
    with pytest.raises(VerificationError) as info:
        parse(vector("notify_trade_success.form"), acct)
    assert PUBLISHED_SNS["sandbox_app_public_cert.crt"] in str(info.value)
    assert WRONG_CERT_HINT in str(info.value)


# -- settings errors -------------------------------------------------------------------------------


def _configuration_error(**settings: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        Notifier("memory://").add_account("shop", "alipay", app_id=APP_ID, **settings)
    return str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "is empty"),
        ("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----", "not valid base64"),
        ("-----BEGIN CERTIFICATE-----\nMIIBIjANBgkq\n-----END CERTIFICATE-----", "not a well-formed X.509"),
        ("-----BEGIN CERTIFICATE-----\nMIIB", "no complete PEM CERTIFICATE"),
        ("/nonexistent/alipayCertPublicKey_RSA2.crt", "'/nonexistent/alipayCertPublicKey_RSA2.crt'"),
        ("line one\nline two", "neither PEM"),
    ],
    ids=["empty", "bad-base64", "truncated", "unterminated", "missing-file", "garbage"],
)
def test_bad_certificate_fails_at_add_account_naming_account_and_field(value: str, expected: str) -> None:
    message = _configuration_error(alipay_public_cert=value)
    assert message.startswith("account 'shop' (alipay): alipay_public_cert: this certificate file ")
    assert expected in message


def test_public_key_pem_given_as_certificate_is_named() -> None:
    message = _configuration_error(alipay_public_cert=pem())
    assert "alipay_public_cert: this certificate file holds a PEM PUBLIC KEY, not a CERTIFICATE" in message


def test_private_key_given_as_certificate_is_refused_without_echo() -> None:
    private = testing.private_key_pem(key())
    message = _configuration_error(alipay_public_cert=private)
    assert "never a private key" in message
    body = "".join(private.splitlines()[1:-1])
    assert body[:40] not in message


def test_non_rsa_certificate_fails_at_add_account() -> None:
    message = _configuration_error(alipay_public_cert=ec_certificate())
    assert "alipay_public_cert: this certificate file has a first certificate with an EC key" in message


def test_sm2_certificate_fails_at_add_account() -> None:
    # The first certificate of Alipay's root bundle is an SM2 root, which holds no usable RSA key.
    message = _configuration_error(alipay_public_cert=vector_cert("alipay_root_cert.crt"))
    assert "alipay_public_cert: this certificate file has a first certificate whose public key" in message


def test_list_errors_name_the_index() -> None:
    message = _configuration_error(alipay_public_cert=[cert(), "garbage\nmore"])
    assert "alipay_public_cert.1: this certificate file is neither PEM" in message
    assert "at least one certificate" in _configuration_error(alipay_public_cert=[])


def test_neither_key_nor_certificate_is_refused_naming_both() -> None:
    message = _configuration_error()
    assert message.startswith("account 'shop' (alipay): (settings): need alipay_public_key")
    assert "alipay_public_cert" in message


def test_bad_root_certificate_is_refused() -> None:
    message = _configuration_error(alipay_public_cert=cert(), alipay_root_cert=ec_certificate())
    assert "alipay_root_cert: this root certificate file holds no RSA-signed certificate" in message


def test_certificate_settings_stay_out_of_repr() -> None:
    settings = AlipaySettings(app_id=APP_ID, alipay_public_cert=cert(), alipay_root_cert=cert("root"))
    assert "BEGIN" not in repr(settings)
    with pytest.raises(ValidationError):
        AlipaySettings(app_id=APP_ID, alipay_public_cert=cert(), alipay_root_cert=[cert()])


def test_certificate_from_a_toml_config_file(tmp_path: Path) -> None:
    (tmp_path / "alipayCertPublicKey_RSA2.crt").write_text(cert("alipay", chain=True))
    config = tmp_path / "paynotify.toml"
    config.write_text(
        'store = "memory://"\n[accounts.shop]\nprovider = "alipay"\n'
        f'app_id = "{APP_ID}"\nalipay_public_cert_file = "alipayCertPublicKey_RSA2.crt"\n'
    )
    notifier = Notifier.from_config(config)
    settings = notifier.accounts["shop"].settings
    assert settings.alipay_cert_sn == cert_sn(cert("alipay", chain=True))


# -- the testing helper ----------------------------------------------------------------------------


def test_certificate_pem_shapes() -> None:
    own = first(cert())
    assert own.issuer == own.subject  # self-signed
    leaf, ca = x509.load_pem_x509_certificates(cert("alipay", chain=True).encode())
    assert leaf.issuer == ca.subject != leaf.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    issued = x509.load_pem_x509_certificates(testing.certificate_pem(key().public_key()).encode())
    assert len(issued) == 1
    assert issued[0].issuer != issued[0].subject  # nobody holds its private key to self-sign
    assert first(testing.certificate_pem(key(), serial_number=12345)).serial_number == 12345


def test_make_return_verifies_in_certificate_mode() -> None:
    body = make_return(key(), app_id=APP_ID, out_trade_no="order-1")
    assert parse(body, cert_account(cert()), channel="return", method="GET").key_id == cert_sn(cert())


# -- through the ASGI app: cert mode, rotation with update_account ---------------------------------


async def _post(notifier: Notifier, *bodies: bytes) -> list[bytes]:
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return [(await client.post("/shop/notify", content=b, headers=FORM)).content for b in bodies]


async def test_certificate_mode_through_the_asgi_app() -> None:
    notifier = Notifier("memory://")
    notifier.add_account("shop", "alipay", app_id=APP_ID, alipay_public_cert=cert("alipay", chain=True))
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    genuine = notify()
    forged = genuine.replace(b"total_amount=88.88", b"total_amount=0.01")
    try:
        assert await _post(notifier, genuine, forged, notify("stranger")) == [b"success", b"fail", b"fail"]
    finally:
        await notifier.aclose()
    assert [r.key_id for r in seen] == [cert_sn(cert("alipay", chain=True))]


Form = Callable[[str], dict[str, Any]]
_AS_KEY: Form = lambda name: {"alipay_public_key": pem(name)}  # noqa: E731
_AS_CERT: Form = lambda name: {"alipay_public_cert": cert(name)}  # noqa: E731


def _both(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two trust settings merged; values of one field become a list."""
    merged: dict[str, Any] = dict(a)
    for field, value in b.items():
        merged[field] = [merged[field], value] if field in merged else value
    return merged


@pytest.mark.parametrize(
    ("old_form", "new_form"),
    [(_AS_KEY, _AS_CERT), (_AS_CERT, _AS_CERT), (_AS_KEY, _AS_KEY)],
    ids=["key-to-cert", "cert-to-cert", "key-to-key"],
)
async def test_rotation_without_downtime_through_update_account(old_form: Form, new_form: Form) -> None:
    notifier = Notifier("memory://")
    notifier.add_account("shop", "alipay", app_id=APP_ID, **old_form("A"))
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)

    def n(signer: str, order: str) -> bytes:
        return make_notify(key(signer), app_id=APP_ID, out_trade_no=order)

    try:
        assert await _post(notifier, n("A", "o-1"), n("B", "o-2")) == [b"success", b"fail"]
        # A bad update is refused and the old settings keep serving.
        with pytest.raises(ConfigurationError):
            notifier.update_account("shop", app_id=APP_ID, alipay_public_cert="garbage\nnot a cert")
        assert await _post(notifier, n("A", "o-3")) == [b"success"]
        notifier.update_account("shop", app_id=APP_ID, **_both(old_form("A"), new_form("B")))
        assert await _post(notifier, n("A", "o-4"), n("B", "o-5")) == [b"success", b"success"]
        notifier.update_account("shop", app_id=APP_ID, **new_form("B"))
        assert await _post(notifier, n("A", "o-6"), n("B", "o-7")) == [b"fail", b"success"]
    finally:
        await notifier.aclose()
    ids = {r.order_id: r.key_id for r in seen}
    assert list(ids) == ["o-1", "o-3", "o-4", "o-5", "o-7"]
    assert ids["o-1"] == ids["o-3"] == ids["o-4"] != ids["o-5"] == ids["o-7"]
