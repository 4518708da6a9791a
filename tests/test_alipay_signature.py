"""The V1 content rule, signatures and keys: rotation, key formats, downgrade, wrong key, bad sign."""

from __future__ import annotations

import base64
import datetime
import re

import pytest
from _alipay_keys import APP_ID, NOTIFY_FIELDS, account, join, key, pairs, parse, pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.x509.oid import NameOID
from paynotify_alipay import AlipaySettings
from paynotify_alipay._signature import WRONG_KEY_HINT, load_public_key, sign, sign_content, verify
from paynotify_alipay.testing import encode_form, make_notify, sign_fields
from pydantic import ValidationError

from paynotify import ConfigurationError, Notifier, VerificationError


def notify(private: RSAPrivateKey | None = None, **fields: str | None) -> bytes:
    return make_notify(private or key(), app_id=APP_ID, out_trade_no="order-1", **fields)  # type: ignore[arg-type]


def replace_field(data: bytes, name: bytes, value: bytes | None) -> bytes:
    items = pairs(data)
    if value is None:
        return join([(k, v) for k, v in items if k != name])
    return join([(k, value if k == name else v) for k, v in items])


# -- the content rule ---------------------------------------------------------------------------


def test_sign_content_drops_sign_sign_type_and_empty_values_and_sorts_bytes() -> None:
    fields = {
        b"b": b"2",
        b"sign": b"xx",
        b"sign_type": b"RSA2",
        b"a": b"1",
        b"empty": b"",
        b"B": b"upper sorts first",
        b"a_b": b"x y+z",
        b"\xe5\x90\x8d": b"non-ascii name sorts last",
    }
    assert sign_content(fields) == (
        b"B=upper sorts first&a=1&a_b=x y+z&b=2&\xe5\x90\x8d=non-ascii name sorts last"
    )


def test_sign_content_re_encodes_nothing() -> None:
    # Values keep their characters: no percent-encoding, no JSON re-serialisation, no escaping.
    fields = {b"fund_bill_list": b'[{"amount":"0.01"}]', b"passback_params": b"a%3Db%26c"}
    assert sign_content(fields) == b'fund_bill_list=[{"amount":"0.01"}]&passback_params=a%3Db%26c'


def test_sign_and_verify_are_inverse_and_use_the_configured_hash() -> None:
    acct = account()
    content = b"a=1&b=2"
    for sign_type in ("RSA2", "RSA"):
        signature = sign(content, key(), sign_type)
        found = verify(content, signature, acct.settings.public_keys, sign_type)
        assert found.key_id == acct.settings.public_keys[0].key_id
    with pytest.raises(VerificationError):
        verify(content, sign(content, key(), "RSA"), acct.settings.public_keys, "RSA2")
    with pytest.raises(VerificationError):
        verify(content, sign(content, key(), "RSA2"), acct.settings.public_keys, "RSA")


def test_unknown_fields_are_signed_over() -> None:
    data = notify(shipping_note="leave at door", new_field_2030="x")
    assert parse(data).raw["new_field_2030"] == "x"
    with pytest.raises(VerificationError):
        parse(replace_field(data, b"new_field_2030", b"y"))
    with pytest.raises(VerificationError):
        parse(replace_field(data, b"shipping_note", None))


def test_empty_values_are_not_in_the_content() -> None:
    fields = {**NOTIFY_FIELDS, "charset": "utf-8", "body": ""}
    signed = dict(fields, sign=sign_fields(fields, key()), sign_type="RSA2")
    result = parse(encode_form(signed))
    assert result.raw["body"] == ""
    # The signature would be the same without the empty field at all.
    without = {k: v for k, v in fields.items() if k != "body"}
    assert sign_fields(without, key()) == signed["sign"]


def test_whitespace_only_values_are_signed() -> None:
    data = notify(body=" ")
    assert parse(data).raw["body"] == " "
    with pytest.raises(VerificationError):
        parse(replace_field(data, b"body", None))


# -- sign errors --------------------------------------------------------------------------------


def test_missing_or_empty_sign_is_refused() -> None:
    data = notify()
    with pytest.raises(VerificationError, match="no sign"):
        parse(replace_field(data, b"sign", None))
    with pytest.raises(VerificationError, match="no sign"):
        parse(replace_field(data, b"sign", b""))


@pytest.mark.parametrize(
    "bad",
    [b"not base64!", b"abc", b"QUJD=", b"QUI", b"QUJ=", b"\xe6\xb5\x8b", b"QUJD\n", b"QUJD RA==", b"-_8="],
    ids=[
        "punctuation",
        "bad-length",
        "extra-padding",
        "no-padding",
        "non-canonical",
        "non-ascii",
        "newline",
        "space",
        "urlsafe",
    ],
)
def test_sign_that_is_not_base64_is_refused(bad: bytes) -> None:
    with pytest.raises(VerificationError, match="base64"):
        parse(replace_field(notify(), b"sign", bad))


def test_sign_of_the_wrong_length_is_refused_with_the_lengths() -> None:
    short = base64.b64encode(bytes(128))
    with pytest.raises(VerificationError, match=r"sign is 128 bytes, the keys expect \[256\]"):
        parse(replace_field(notify(), b"sign", short))
    with pytest.raises(VerificationError):
        parse(replace_field(notify(), b"sign", base64.b64encode(bytes(256))))


def test_wrong_key_error_names_app_key_ids_sign_type_and_the_hint() -> None:
    acct = account(alipay_public_key=[pem("merchant-app-key"), pem("old")])
    with pytest.raises(VerificationError) as info:
        parse(notify(), acct)
    message = str(info.value)
    assert f"app_id {APP_ID}" in message
    assert "RSA2 (SHA-256)" in message
    for public in acct.settings.public_keys:
        assert public.key_id in message
    assert WRONG_KEY_HINT in message
    assert "支付宝公钥" in message
    assert info.value.account == "shop"
    assert "BEGIN" not in message


def test_message_claiming_rsa_is_noted_but_not_obeyed() -> None:
    # Downgrade: signed with SHA-1, says sign_type=RSA; an RSA2 account verifies with SHA-256 only.
    sha1_signed = notify(sign_type="RSA")
    assert parse(sha1_signed, account(sign_type="RSA")).is_paid
    with pytest.raises(VerificationError, match=r"message says sign_type='RSA', account verifies RSA2"):
        parse(sha1_signed, account())
    # The other way round: SHA-256 signed but the message says RSA -> verified as RSA2.
    says_rsa = replace_field(notify(), b"sign_type", b"RSA")
    assert parse(says_rsa).is_paid


# -- keys ---------------------------------------------------------------------------------------


def _bare(text: str) -> str:
    return "".join(line for line in text.splitlines() if not line.startswith("-----"))


def _certificate(private: RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Alipay sandbox (test)")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=800))
        .not_valid_after(now - datetime.timedelta(days=1))  # expired: never checked per notification
        .sign(private, hashes.SHA256())
    )


def test_bare_base64_key_from_the_console_is_accepted() -> None:
    bare = _bare(pem())
    assert "\n" not in bare
    acct = account(alipay_public_key=bare)
    assert acct.settings.public_keys[0].key_id == account().settings.public_keys[0].key_id
    assert parse(notify(), acct).is_paid


def test_pkcs1_and_indented_pem_are_accepted() -> None:
    pkcs1 = (
        key().public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
    )
    assert parse(notify(), account(alipay_public_key=pkcs1)).is_paid
    indented = "\n".join("    " + line for line in pem().splitlines())
    assert parse(notify(), account(alipay_public_key=indented)).is_paid


def test_certificate_is_accepted_as_its_public_key_even_when_expired() -> None:
    cert = _certificate(key())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    acct = account(alipay_public_key="subject=CN=Alipay\n" + cert_pem + cert_pem)
    assert acct.settings.public_keys[0].from_certificate
    assert parse(notify(), acct).is_paid
    cert_der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    assert parse(notify(), account(alipay_public_key=cert_der)).is_paid


def test_rotation_old_and_new_keys_verify_a_third_does_not() -> None:
    acct = account(alipay_public_key=[pem("old"), pem("new")])
    assert parse(notify(key("old")), acct).is_paid
    assert parse(notify(key("new")), acct).is_paid
    with pytest.raises(VerificationError) as info:
        parse(notify(key("stranger")), acct)
    ids = [k.key_id for k in acct.settings.public_keys]
    assert len(ids) == 2
    assert f"keys tried: {ids[0]}, {ids[1]}" in str(info.value)


def test_duplicate_keys_in_the_list_are_kept_once() -> None:
    acct = account(alipay_public_key=[pem(), _bare(pem())])
    assert len(acct.settings.public_keys) == 1


def test_key_ids_are_short_stable_hex() -> None:
    first = load_public_key(pem()).key_id
    assert re.fullmatch(r"[0-9a-f]{8}", first)
    assert load_public_key(_bare(pem())).key_id == first
    assert load_public_key(pem("other")).key_id != first


def _settings_error(value: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        AlipaySettings(app_id=APP_ID, alipay_public_key=value)
    return info.value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "is empty"),
        ("not a key, at all!", "neither PEM nor base64"),
        ("TUlJQg==", "not a public key or certificate"),
        ("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----", "cannot be read"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----", "private key"),
        ("-----BEGIN PGP MESSAGE-----\nxx\n-----END PGP MESSAGE-----", "expected a PUBLIC KEY"),
    ],
)
def test_bad_key_fails_validation_naming_the_field(value: str, expected: str) -> None:
    error = _settings_error(value)
    [problem] = error.errors()
    assert problem["loc"] == ("alipay_public_key",)
    assert expected in problem["msg"]
    if len(value) > 8:
        assert value not in str(error)


def test_private_key_is_refused_without_being_echoed() -> None:
    private_pem = (
        key()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    for value in (private_pem, _bare(private_pem)):
        error = _settings_error(value)
        assert "private key" in str(error)
        body = _bare(private_pem)
        assert body[:40] not in str(error)
        assert body[-40:] not in str(error)


def test_non_rsa_key_is_refused() -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert "not an RSA key" in str(_settings_error(ec_pem))


def test_list_errors_name_the_index_and_empty_list_is_refused() -> None:
    error = _settings_error([pem(), "garbage"])
    assert [e["loc"] for e in error.errors()] == [("alipay_public_key", 1)]
    assert "at least one key" in str(_settings_error([]))


def test_notifier_reports_a_bad_key_as_configuration_error_naming_account_and_field() -> None:
    notifier = Notifier("memory://")
    with pytest.raises(ConfigurationError) as info:
        notifier.add_account("shop", "alipay", app_id=APP_ID, alipay_public_key="no-pe?")
    assert "account 'shop' (alipay): alipay_public_key: this key is neither PEM nor base64" in str(info.value)


def test_settings_fields_and_checks() -> None:
    settings = AlipaySettings(app_id=APP_ID, alipay_public_key=pem())
    assert settings.sign_type == "RSA2"
    assert settings.expected_app_id() == APP_ID
    assert settings.expected_merchant_id() is None
    assert (
        AlipaySettings(app_id=APP_ID, alipay_public_key=pem(), seller_id="2088").expected_merchant_id()
        == "2088"
    )
    assert "BEGIN" not in repr(settings)
    for bad in ({"sign_type": "RSA3"}, {"app_id": ""}, {"seller_id": ""}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            AlipaySettings(**{"app_id": APP_ID, "alipay_public_key": pem(), **bad})
