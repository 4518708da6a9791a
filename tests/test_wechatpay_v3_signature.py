"""The v3 signature rule and its refusals, through WeChatPayV3Provider.parse with real RSA keys.

Each refusal is a VerificationError naming the rule (and the account, the serial or key id) and
never a crash; the body is not read before the signature verified."""

from __future__ import annotations

import base64
import json
import re

import pytest
from _wechatpay_v3 import (
    APPID,
    MCHID,
    NOW,
    PROVIDER,
    account,
    apiv3_key,
    certificate,
    lower,
    parse,
    parse_result,
    payment,
    public_key,
)
from hypothesis import given
from hypothesis import strategies as st
from paynotify_wechatpay import WeChatPayV3Settings
from paynotify_wechatpay._v3_keys import Keyring, load_platform_certificates
from paynotify_wechatpay._v3_signature import SignedHeaders, _check_formats, message, sign, verify
from paynotify_wechatpay.testing import generate_v3_platform_certificate, generate_v3_public_key, sign_v3

from paynotify import Account, InboundRequest, MalformedNotification, VerificationError


def refused(
    notify: tuple[dict[str, str], bytes], match: str, acct: Account[WeChatPayV3Settings] | None = None
) -> str:
    with pytest.raises(VerificationError, match=match) as info:
        parse(notify, acct)
    assert info.value.account == (acct.name if acct else "shop")
    return str(info.value)


def test_signed_message_is_timestamp_nonce_body_each_followed_by_newline() -> None:
    assert message("1624523846", "abc", b'{"a":1}') == b'1624523846\nabc\n{"a":1}\n'


@given(st.text(alphabet="0123456789\u0661\u00b2\uff11\U0001d7d8 +-.\n\x00a", max_size=14))
def test_a_timestamp_is_accepted_when_it_is_1_to_12_ascii_digits(timestamp: str) -> None:
    headers = SignedHeaders(timestamp, "nonce", "signature", "serial", None)
    try:
        _check_formats(headers)
    except VerificationError:
        accepted = False
    else:
        accepted = True
    assert accepted is bool(re.fullmatch(r"[0-9]{1,12}", timestamp))


def test_sign_and_verify_are_inverse() -> None:
    body = b'{"id":"x"}'
    signature = sign(certificate().private_key, str(NOW), "nonce", body)
    headers = SignedHeaders(str(NOW), "nonce", signature, certificate().key_id, None)
    keys = account().settings.keyring
    assert verify(headers, body, keys, now=NOW, tolerance=300).key_id == certificate().key_id


def test_both_key_modes_verify_on_one_account() -> None:
    by_certificate = parse_result(payment(certificate(), out_trade_no="o-cert"))
    by_public_key = parse_result(payment(public_key(), out_trade_no="o-pub"))
    assert by_certificate.key_id == certificate().key_id
    assert by_public_key.key_id == public_key().key_id
    assert by_public_key.key_id.startswith("PUB_KEY_ID_")


def test_a_key_the_account_does_not_trust_is_refused_naming_the_serial_and_the_configured_ones() -> None:
    stranger = generate_v3_platform_certificate()
    text = refused(payment(stranger), "names no trusted key")
    assert stranger.key_id in text
    assert certificate().key_id in text
    assert public_key().key_id in text
    assert "account 'shop'" in text


def test_right_serial_wrong_key_is_refused() -> None:
    forger = generate_v3_platform_certificate(serial=int(certificate().key_id, 16))
    assert forger.key_id == certificate().key_id
    text = refused(payment(forger), "does not verify with platform certificate")
    assert certificate().key_id in text


def test_public_key_mode_with_a_wrong_key_is_refused() -> None:
    forger = generate_v3_public_key(public_key().key_id)
    refused(payment(forger), f"does not verify with public key {public_key().key_id}")


def test_certificate_only_account_and_public_key_only_account() -> None:
    cert_only = account(public_key_id=None, public_key=None)
    pub_only = account(platform_certificates=None)
    assert parse_result(payment(certificate()), cert_only).key_id == certificate().key_id
    assert parse_result(payment(public_key()), pub_only).key_id == public_key().key_id
    refused(payment(public_key()), "names no trusted key", cert_only)
    refused(payment(certificate()), "names no trusted key", pub_only)


@pytest.mark.parametrize("transform", [str.lower, str.upper, lambda s: s[:3].lower() + s[3:]])
def test_certificate_serial_is_matched_without_regard_to_case(transform: object) -> None:
    serial = certificate().key_id
    assert serial == serial.upper()
    headers, body = payment(certificate())
    headers["Wechatpay-Serial"] = transform(serial)  # type: ignore[operator]
    assert parse_result((headers, body)).key_id == serial  # the configured (canonical) serial


def test_public_key_id_is_matched_exactly_and_never_parsed_as_hex() -> None:
    # A PUB_KEY_ID whose tail is valid hex, and a certificate whose serial is that hex number: an
    # implementation that strips the prefix or does int(serial, 16) would confuse them.
    hex_tail = "0123456789ABCDEF"
    pub = generate_v3_public_key(f"PUB_KEY_ID_{hex_tail}")
    cert = generate_v3_platform_certificate(serial=int(hex_tail, 16))
    acct = account(platform_certificates=[cert.certificate_pem], **pub.account_settings())
    assert parse_result(payment(pub), acct).key_id == pub.key_id
    assert parse_result(payment(cert), acct).key_id == cert.key_id == hex_tail.lstrip("0")
    for wrong in (pub.key_id.lower(), f"PUB_KEY_ID_{hex_tail.lower()}", hex_tail, f"PUB_KEY_ID_0{hex_tail}"):
        headers, body = payment(pub)
        headers["Wechatpay-Serial"] = wrong
        refused((headers, body), "names no trusted key|does not verify", acct)
    # A certificate-only account receiving a PUB_KEY_ID: refused as unknown, not a crash in int().
    refused(payment(pub), "names no trusted key", account(public_key_id=None, public_key=None))


@pytest.mark.parametrize("offset", [-300, 300, 0, -1, 1])
def test_timestamps_inside_the_window_are_accepted(offset: int) -> None:
    assert parse_result(payment(timestamp=NOW + offset)).order_id == "order-1"


@pytest.mark.parametrize(("offset", "direction"), [(-301, "old"), (301, "in the future"), (-86400, "old")])
def test_timestamps_outside_the_window_are_refused(offset: int, direction: str) -> None:
    text = refused(
        payment(timestamp=NOW + offset), f"is {abs(offset)} s {direction}, outside the 300 s replay window"
    )
    assert certificate().key_id in text


def test_the_window_is_the_account_setting() -> None:
    acct = account(timestamp_tolerance=60)
    assert parse_result(payment(timestamp=NOW - 60), acct)
    refused(payment(timestamp=NOW - 61), "outside the 60 s replay window", acct)
    refused(payment(timestamp=NOW + 61), "in the future", acct)


@pytest.mark.parametrize(
    "header", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
)
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_each_missing_header_is_refused(header: str, how: str) -> None:
    headers, body = payment()
    if how == "missing":
        del headers[header]
    else:
        headers[header] = ""
    refused((headers, body), f"no {header} header")


def test_signature_type_absent_or_rsa_is_accepted_anything_else_refused() -> None:
    headers, body = payment()
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    del headers["Wechatpay-Signature-Type"]
    assert parse_result((headers, body))
    for other in ("WECHATPAY2-SM2-WITH-SM3", "wechatpay2-sha256-rsa2048", "HMAC-SHA256", ""):
        headers["Wechatpay-Signature-Type"] = other
        refused((headers, body), "Wechatpay-Signature-Type .* is not supported")


@pytest.mark.parametrize(
    "probe",
    [
        "WECHATPAY/SIGNTEST/",
        "WECHATPAY/SIGNTEST/abc==",
        "WECHATPAY/SIGNTEST/" + base64.b64encode(b"\x00" * 256).decode(),
        "WECHATPAY/SIGNTEST/\u00e9\u4e2d",
    ],
)
def test_signtest_probes_are_refused_without_a_crash(probe: str) -> None:
    headers, body = payment()
    headers["Wechatpay-Signature"] = probe
    refused((headers, body), "SIGNTEST")


@pytest.mark.parametrize(
    ("signature", "match"),
    [
        ("not base64!", "not valid base64"),
        ("YWJj", "is 3 bytes"),
        ("YWJjZA", "not valid base64"),  # unpadded
        ("中文", "not valid base64"),
    ],
)
def test_signature_that_is_not_base64_of_the_key_size_is_refused(signature: str, match: str) -> None:
    headers, body = payment()
    headers["Wechatpay-Signature"] = signature
    refused((headers, body), match)


@pytest.mark.parametrize(
    ("header", "value", "match"),
    [
        ("Wechatpay-Timestamp", "1700000000.0", "not unix seconds"),
        ("Wechatpay-Timestamp", "-1700000000", "not unix seconds"),
        ("Wechatpay-Timestamp", "\uff11\uff17" + "\uff10" * 8, "not unix seconds"),  # full-width digits
        ("Wechatpay-Nonce", "nonce\u4e2d", "not printable ASCII"),
        ("Wechatpay-Nonce", "a\nb", "not printable ASCII"),
    ],
)
def test_header_formats(header: str, value: str, match: str) -> None:
    headers, body = payment()
    headers[header] = value
    refused((headers, body), match)


def test_every_single_changed_byte_of_the_body_is_refused() -> None:
    headers, body = payment()
    acct = account()
    for i in range(len(body)):
        changed = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        with pytest.raises(VerificationError):
            PROVIDER.parse(InboundRequest("POST", "notify", lower(headers), body=changed), acct)


def test_changed_nonce_or_timestamp_is_refused() -> None:
    headers, body = payment()
    refused(({**headers, "Wechatpay-Nonce": headers["Wechatpay-Nonce"] + "x"}, body), "does not verify")
    refused(({**headers, "Wechatpay-Timestamp": str(NOW + 1)}, body), "does not verify")


def test_reserialised_json_with_the_same_content_is_refused() -> None:
    headers, body = payment()
    same_content = json.dumps(json.loads(body), ensure_ascii=True, indent=1).encode()
    assert json.loads(same_content) == json.loads(body)
    refused((headers, same_content), "does not verify")
    refused((headers, body + b"\n"), "does not verify")


def test_a_signature_over_another_body_is_refused() -> None:
    headers, _ = payment(out_trade_no="cheap-order")
    _, body = payment(out_trade_no="expensive-order")
    refused((headers, body), "does not verify")


def test_nothing_of_the_body_is_read_before_verification() -> None:
    body = b"this is not JSON"
    refused((sign_v3(body, generate_v3_platform_certificate(), timestamp=NOW), body), "names no trusted key")
    refused((sign_v3(body, certificate(), timestamp=NOW - 1000), body), "replay window")
    with pytest.raises(MalformedNotification, match="not JSON"):  # only a verified body is parsed
        parse((sign_v3(body, certificate(), timestamp=NOW), body))


def test_no_key_material_in_errors() -> None:
    stranger = generate_v3_platform_certificate()
    with pytest.raises(VerificationError) as info:
        parse(payment(stranger))
    text = str(info.value)
    assert apiv3_key() not in text
    assert "BEGIN" not in text
    assert APPID not in text  # the rule and the key, not the account's business ids
    assert MCHID not in text


def test_keyring_lookup() -> None:
    pem = certificate().certificate_pem
    assert pem is not None
    keys = Keyring(load_platform_certificates(pem))
    assert keys.find(certificate().key_id.lower()) is not None
    assert keys.find(public_key().key_id) is None
    assert keys.key_ids == (certificate().key_id,)
    assert len(account().settings.keyring) == 2
    assert account().settings.keyring.key_ids == (public_key().key_id, certificate().key_id)
