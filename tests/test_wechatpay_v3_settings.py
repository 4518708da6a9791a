"""Account settings: keys are loaded once at validation; every mistake is refused when the account
is added, naming the account and the field, and no secret appears in an error or a repr."""

from __future__ import annotations

from typing import Any

import pytest
from _wechatpay_v3 import (
    APPID,
    MCHID,
    SP_APPID,
    SP_MCHID,
    SUB_MCHID,
    apiv3_key,
    certificate,
    public_key,
    settings,
    sp_settings,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from paynotify_wechatpay import WeChatPayV3Settings
from paynotify_wechatpay.testing import generate_v3_platform_certificate
from pydantic import ValidationError

from paynotify import ConfigurationError, Notifier


def add(**overrides: Any) -> None:
    Notifier("memory://").add_account("shop", "wechatpay-v3", **settings(**overrides))


def refused(match: str, **overrides: Any) -> str:
    with pytest.raises(ConfigurationError, match=match) as info:
        add(**overrides)
    text = str(info.value)
    assert text.startswith("account 'shop' (wechatpay-v3): ")
    assert apiv3_key() not in text
    return text


def test_keys_are_loaded_once_and_secrets_stay_out_of_repr() -> None:
    s = WeChatPayV3Settings(**settings())
    assert s.keyring.key_ids == (public_key().key_id, certificate().key_id)
    assert s.apiv3_key_bytes == apiv3_key().encode()
    assert s.keyring is s.keyring  # loaded at validation, not per access
    for text in (repr(s), str(s)):
        assert apiv3_key() not in text
        assert "BEGIN" not in text
    assert s.timestamp_tolerance == 300
    assert s.service_provider is False


@pytest.mark.parametrize("size", [31, 33, 16, 0, 64])
def test_apiv3_key_must_be_exactly_32_bytes(size: int) -> None:
    key = ("k" * size)[:size]
    text = refused(rf"apiv3_key: .*exactly 32 bytes; this one has {size} bytes", apiv3_key=key)
    if key:
        assert key not in text


def test_apiv3_key_counts_bytes_not_characters_and_refuses_spaces_at_the_ends() -> None:
    refused("this one has 33 bytes", apiv3_key="\u00e9" + "k" * 31)  # 32 characters, 33 bytes
    refused("spaces or a newline at the ends", apiv3_key="k" * 31 + "\n")
    refused("spaces or a newline at the ends", apiv3_key=" " + "k" * 31)


def test_bad_pem_certificate_names_the_field_and_index() -> None:
    text = refused(
        r"platform_certificates\.1: this certificate is a PEM CERTIFICATE that cannot be read",
        platform_certificates=[
            certificate().certificate_pem,
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        ],
    )
    assert "platform_certificates.0" not in text


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("garbage", r"platform_certificates: this certificate is not PEM"),
        ("", r"platform_certificates: this certificate is not PEM"),
        (
            public_key().public_key_pem,
            "is a PEM PUBLIC KEY, not a certificate; a WeChat Pay public key goes in",
        ),
        (
            certificate()
            .private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            .decode(),
            "is a private key",
        ),
    ],
    ids=["garbage", "empty", "public-key", "private-key"],
)
def test_wrong_things_in_platform_certificates(value: str, match: str) -> None:
    text = refused(match, platform_certificates=value)
    assert "PRIVATE KEY-----\n" not in text


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("garbage", "public_key: this key is not a PEM public key"),
        (certificate().certificate_pem, "public_key: this key is a certificate; platform certificates go in"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "cannot be read"),
    ],
)
def test_wrong_things_in_public_key(value: str, match: str) -> None:
    refused(match, public_key=value)


def test_public_key_id_and_public_key_come_together() -> None:
    refused("public_key: .*public_key_id and public_key are set together", public_key=None)
    refused("public_key_id: .*public_key_id and public_key are set together", public_key_id=None)


def test_public_key_id_must_look_like_one() -> None:
    refused("public_key_id: .*must start with PUB_KEY_ID_", public_key_id=certificate().key_id)
    refused("public_key_id: .*must start with PUB_KEY_ID_", public_key_id="pub_key_id_0114")


def test_at_least_one_key() -> None:
    refused(
        "no WeChat Pay key is configured: set platform_certificates, or public_key_id and public_key",
        platform_certificates=None,
        public_key_id=None,
        public_key=None,
    )
    refused("no WeChat Pay key", platform_certificates=[], public_key_id=None, public_key=None)


def test_a_single_string_and_a_bundle_of_certificates() -> None:
    first, second = certificate().certificate_pem, generate_v3_platform_certificate().certificate_pem
    assert first is not None
    assert second is not None
    only_certificate = settings(platform_certificates=first, public_key=None)
    single = WeChatPayV3Settings(**{**only_certificate, "public_key_id": None})
    bundle = WeChatPayV3Settings(**settings(platform_certificates=first + second))
    listed = WeChatPayV3Settings(**settings(platform_certificates=[first, second]))
    assert single.keyring.key_ids == (certificate().key_id,)
    assert len(bundle.keyring) == 3
    assert bundle.keyring.key_ids == listed.keyring.key_ids


def test_the_same_certificate_twice_is_one_key_two_with_one_serial_are_refused() -> None:
    pem = certificate().certificate_pem
    assert len(WeChatPayV3Settings(**settings(platform_certificates=[pem, pem])).keyring) == 2
    twin = generate_v3_platform_certificate(serial=int(certificate().key_id, 16))
    refused("two different certificates have serial", platform_certificates=[pem, twin.certificate_pem])


def test_small_rsa_and_non_rsa_keys_are_refused() -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    refused(
        "public_key: this key holds an? .*, not an RSA key; WeChat Pay API v3 signs with RSA",
        public_key=ec_pem,
    )
    small = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - what is refused
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    refused(
        "public_key: this key holds a 1024-bit RSA key; WeChat Pay's public key is RSA 2048", public_key=small
    )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"mchid": None}, "mchid: is required"),
        ({"appid": None}, "appid: is required"),
        ({"mchid": ""}, "mchid: String should have at least 1 character"),
        ({"sub_mchid": SUB_MCHID}, "sub_mchid: is for service providers"),
        ({"timestamp_tolerance": 0}, "timestamp_tolerance: Input should be greater than 0"),
        ({"unknown": 1}, "unknown: Extra inputs are not permitted"),
    ],
)
def test_direct_merchant_settings(overrides: dict[str, Any], match: str) -> None:
    refused(match, **overrides)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"sp_appid": None}, "sp_appid: is required for a service provider"),
        ({"mchid": MCHID}, "mchid: is for direct merchants"),
        ({"appid": APPID}, "appid: is for direct merchants"),
    ],
)
def test_service_provider_settings(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Notifier("memory://").add_account("sp", "wechatpay-v3", **sp_settings(**overrides))


def test_service_provider_settings_valid() -> None:
    s = WeChatPayV3Settings(**sp_settings(sub_mchid=SUB_MCHID, sub_appid="wx000000000000sub1"))
    assert s.service_provider is True
    assert (s.expected_app_id(), s.expected_merchant_id()) == (SP_APPID, SUB_MCHID)
    assert s.sp_mchid == SP_MCHID


def test_settings_are_frozen() -> None:
    s = WeChatPayV3Settings(**settings())
    with pytest.raises(ValidationError):
        s.mchid = "other"  # type: ignore[misc]


def test_validation_error_hides_input() -> None:
    with pytest.raises(ValidationError) as info:
        WeChatPayV3Settings(**settings(apiv3_key="s" * 31))
    assert "s" * 31 not in str(info.value)
