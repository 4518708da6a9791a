"""UnionPay account settings: the bundled CFCA chains, overrides as PEM or path, verify_certs, and
mistakes refused when the account is added, naming account and field without repeating content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _unionpay import MER_ID, chain
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from paynotify_unionpay import TEST_CN_ORG, UNIONPAY_CN_ORG, UnionPaySettings
from paynotify_unionpay.testing import generate_chain, generate_key

from paynotify import ConfigurationError, Notifier


def add(**settings: Any) -> UnionPaySettings:
    values: dict[str, Any] = {"mer_id": MER_ID}
    values.update(settings)
    acct = Notifier("memory://").add_account("shop", "unionpay", **values)
    assert isinstance(acct.settings, UnionPaySettings)
    return acct.settings


def refused(**settings: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        add(**settings)
    text = str(info.value)
    assert text.startswith("account 'shop' (unionpay): "), text
    return text


def test_production_is_the_default_with_unionpay_cfca_chain() -> None:
    settings = add()
    trust = settings.trust_chain
    assert (settings.environment, trust.environment) == ("production", "production")
    assert trust.root.subject == "O=CFCA CS CA,C=CN"
    assert trust.middle.subject == "O=CFCA OCA1,C=CN"
    assert trust.cn_orgs == {UNIONPAY_CN_ORG}
    assert settings.verify_certificates == {}
    assert settings.expected_merchant_id() == MER_ID


def test_test_environment_trusts_the_test_chain_and_test_cns() -> None:
    trust = add(environment="test").trust_chain
    assert trust.root.subject == "CN=CFCA TEST CS CA,O=China Financial Certification Authority,C=CN"
    assert trust.middle.subject == "CN=CFCA TEST OCA1,O=China Financial Certification Authority,C=CN"
    assert trust.cn_orgs == {UNIONPAY_CN_ORG, TEST_CN_ORG}


def test_overrides_as_pem_text_or_path(tmp_path: Path) -> None:
    c = chain()
    (tmp_path / "root.cer").write_text(c.root_pem)
    der = c.middle.public_bytes(serialization.Encoding.DER)
    (tmp_path / "middle.cer").write_bytes(der)
    from_paths = add(root_cert=str(tmp_path / "root.cer"), middle_cert=tmp_path / "middle.cer")
    from_text = add(root_cert=c.root_pem, middle_cert=c.middle_pem)
    for settings in (from_paths, from_text):
        assert settings.trust_chain.middle.serial == str(c.middle.serial_number)
        assert settings.trust_chain.root.serial == str(c.root.serial_number)


def test_verify_certs_by_cert_id() -> None:
    c, other = chain(), generate_chain()
    single = add(verify_certs=c.leaf_pem)
    assert list(single.verify_certificates) == [c.cert_id]
    both = add(verify_certs=[c.leaf_pem, other.leaf_pem, c.leaf_pem])  # a duplicate is harmless
    assert set(both.verify_certificates) == {c.cert_id, other.cert_id}


def test_two_certificates_under_one_cert_id_are_refused() -> None:
    c = chain()
    impostor = c.with_leaf()
    builder = (
        x509.CertificateBuilder()
        .subject_name(impostor.leaf.subject)
        .issuer_name(impostor.leaf.issuer)
        .public_key(generate_key().public_key())
        .serial_number(c.leaf.serial_number)
        .not_valid_before(impostor.leaf.not_valid_before_utc)
        .not_valid_after(impostor.leaf.not_valid_after_utc)
    )
    clash = builder.sign(c.middle_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
    text = refused(verify_certs=[c.leaf_pem, clash])
    assert f"verify_certs.1: two different certificates have certId {c.cert_id}" in text


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"root_cert": "no/such/file.cer"},
            "root_cert: this root certificate is not PEM, so it was read as a path: 'no/such/file.cer'",
        ),
        (
            {"middle_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"},
            "middle_cert: this middle certificate is not a readable X.509 certificate",
        ),
        ({"verify_certs": ["", "x"]}, "verify_certs.0: this certificate is neither PEM"),
        ({"mer_id": ""}, "mer_id"),
        ({"mer_id": "777-290"}, "mer_id"),
        ({"environment": "sandbox"}, "environment"),
        ({"cert_dir": "certs"}, "cert_dir"),
    ],
)
def test_mistakes_are_refused_naming_the_field(settings: dict[str, Any], expected: str) -> None:
    assert expected in refused(**settings)


def test_a_private_key_is_refused_without_being_repeated() -> None:
    pem = (
        generate_key()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    text = refused(verify_certs=[pem])
    assert "verify_certs.0: this certificate holds a private key" in text
    assert pem.splitlines()[1] not in text


def test_certificates_are_not_in_repr() -> None:
    c = chain()
    settings = add(root_cert=c.root_pem, middle_cert=c.middle_pem, verify_certs=[c.leaf_pem])
    assert "BEGIN" not in repr(settings)
    assert MER_ID in repr(settings)


def test_from_a_toml_config_with_certificate_files(tmp_path: Path) -> None:
    c = chain()
    (tmp_path / "certs").mkdir()
    for name, pem in [("root", c.root_pem), ("middle", c.middle_pem), ("verify", c.leaf_pem)]:
        (tmp_path / "certs" / f"{name}.cer").write_text(pem)
    config = tmp_path / "paynotify.toml"
    config.write_text(
        "[accounts.shop]\n"
        'provider = "unionpay"\n'
        f'mer_id = "{MER_ID}"\n'
        'environment = "test"\n'
        'root_cert_file = "certs/root.cer"\n'
        'middle_cert_file = "certs/middle.cer"\n'
        'verify_certs_file = ["certs/verify.cer"]\n'
    )
    settings = Notifier.from_config(config).accounts["shop"].settings
    assert isinstance(settings, UnionPaySettings)
    assert settings.environment == "test"
    assert settings.trust_chain.middle.serial == str(c.middle.serial_number)
    assert list(settings.verify_certificates) == [c.cert_id]
