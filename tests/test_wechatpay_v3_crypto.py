"""The AEAD_AES_256_GCM resource: the nonce is the string's bytes (not base64), the associated data
is authenticated (and may be empty), and a wrong APIv3 key is a clear VerificationError."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from _wechatpay_v3 import NOW, account, apiv3_key, certificate, parse, payment
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from paynotify_wechatpay._v3_crypto import ALGORITHM, decrypt_resource, encrypt_resource, resource_json
from paynotify_wechatpay.testing import encrypt_v3_resource, generate_apiv3_key, make_v3_notify, sign_v3

from paynotify import MalformedNotification, VerificationError

KEY = b"0123456789abcdef0123456789abcdef"


def sealed(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = encrypt_resource(
        b'{"a":1}', KEY, nonce="abcdefghijkl", associated_data="transaction", original_type="transaction"
    )
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


def test_round_trip_and_the_exact_cipher() -> None:
    resource = sealed()
    assert resource["algorithm"] == ALGORITHM == "AEAD_AES_256_GCM"
    assert decrypt_resource(resource, KEY) == b'{"a":1}'
    # Independently: AES-256-GCM, nonce = the 12 ASCII bytes, AAD = associated_data, tag appended.
    raw = base64.b64decode(resource["ciphertext"])
    assert AESGCM(KEY).decrypt(b"abcdefghijkl", raw, b"transaction") == b'{"a":1}'
    assert len(raw) == len(b'{"a":1}') + 16


def test_nonce_is_used_as_text_not_base64() -> None:
    nonce = "QUJDREVGR0hJ"  # valid base64 (of "ABCDEFGHI"): must still be used as its 12 bytes
    resource = encrypt_resource(b"x", KEY, nonce=nonce, associated_data="", original_type="t")
    assert AESGCM(KEY).decrypt(nonce.encode(), base64.b64decode(resource["ciphertext"]), b"") == b"x"
    assert decrypt_resource(resource, KEY) == b"x"


@pytest.mark.parametrize("associated_data", ["", None])
def test_empty_or_absent_associated_data(associated_data: str | None) -> None:
    resource = encrypt_resource(b"x", KEY, nonce="abcdefghijkl", associated_data="", original_type="t")
    resource = {k: v for k, v in resource.items() if k != "associated_data"}
    if associated_data is not None:
        resource["associated_data"] = associated_data
    assert decrypt_resource(resource, KEY) == b"x"


@pytest.mark.parametrize(
    "changes",
    [
        {"associated_data": "refund"},
        {"associated_data": ""},
        {"nonce": "abcdefghijkm"},
    ],
    ids=["other-aad", "dropped-aad", "other-nonce"],
)
def test_changed_associated_data_or_nonce_fails_the_tag(changes: dict[str, str]) -> None:
    with pytest.raises(VerificationError, match="GCM tag mismatch"):
        decrypt_resource(sealed(**changes), KEY)


def test_changed_ciphertext_fails_the_tag() -> None:
    raw = bytearray(base64.b64decode(sealed()["ciphertext"]))
    raw[0] ^= 1
    with pytest.raises(VerificationError, match="GCM tag mismatch"):
        decrypt_resource(sealed(ciphertext=base64.b64encode(bytes(raw)).decode()), KEY)


def test_wrong_apiv3_key_is_a_clear_error_without_the_key() -> None:
    with pytest.raises(VerificationError, match="does not decrypt with this account's apiv3_key") as info:
        decrypt_resource(sealed(), b"f" * 32)
    assert KEY.decode() not in str(info.value)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"algorithm": "AEAD_SM4_GCM"}, "is not AEAD_AES_256_GCM"),
        ({"algorithm": None}, "no algorithm"),
        ({"nonce": None}, "no nonce"),
        ({"nonce": "short"}, "nonce is 5 bytes, not 12"),
        ({"nonce": "\u4e2d" * 12}, "nonce is 36 bytes"),
        ({"nonce": 123456789012}, "no nonce"),
        ({"ciphertext": None}, "no ciphertext"),
        ({"ciphertext": "not base64!"}, "not standard base64"),
        ({"ciphertext": "\u4e2d"}, "not standard base64"),
        ({"ciphertext": base64.b64encode(b"x" * 16).decode()}, "no room for a GCM tag"),
        ({"associated_data": 5}, "no associated_data"),
    ],
)
def test_malformed_resources(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedNotification, match=match):
        decrypt_resource(sealed(**changes), KEY)


@pytest.mark.parametrize(
    ("plaintext", "match"),
    [(b"[1]", "a JSON list, not an object"), (b"\xff", "not JSON"), (b"{", "not JSON")],
)
def test_decrypted_resource_must_be_a_json_object(plaintext: bytes, match: str) -> None:
    with pytest.raises(MalformedNotification, match=match):
        resource_json(plaintext)


def test_notification_encrypted_with_another_apiv3_key_is_refused_after_the_signature_verified() -> None:
    with pytest.raises(VerificationError, match="apiv3_key") as info:
        parse(payment(key=generate_apiv3_key()))
    assert info.value.account == "shop"
    assert apiv3_key() not in str(info.value)


def test_signed_notification_with_a_broken_resource_is_malformed() -> None:
    resource = {**encrypt_v3_resource({"a": 1}, apiv3_key()), "algorithm": "AEAD_SM4_GCM"}
    body = json.dumps({"id": "1", "event_type": "TRANSACTION.SUCCESS", "resource": resource}).encode()
    with pytest.raises(MalformedNotification, match="not AEAD_AES_256_GCM"):
        parse((sign_v3(body, certificate(), timestamp=NOW), body))


def test_settings_decrypt_resource_for_unhandled_events() -> None:
    headers, body = make_v3_notify(
        certificate(), apiv3_key(), {"out_contract_code": "c-1"}, event_type="PAYSCORE.USER_OPEN_SERVICE",
        original_type="payscore", timestamp=NOW,
    )  # fmt: skip
    event = parse((headers, body))
    assert event.raw["resource"] == {"out_contract_code": "c-1"}  # decrypted for the hooks
    envelope = json.loads(body)
    assert account().settings.decrypt_resource(envelope["resource"]) == {"out_contract_code": "c-1"}
