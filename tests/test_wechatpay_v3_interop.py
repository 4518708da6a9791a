"""Interoperability with the wechatpayv3 SDK (minibear2021/wechatpayv3): it verifies and decrypts
the notifications our testing helpers make, in both key modes, refuses our forgeries, and agrees
with us on the real vector. An independent check that the helpers make what WeChat Pay sends.

The SDK is given its keys locally (a public key, or a certificate directory), so it never goes
to the network; it checks no replay window, so the pinned timestamps do not matter to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _wechatpay_v3 import (
    APPID,
    MCHID,
    VECTOR,
    VECTOR_SERIAL,
    apiv3_key,
    certificate,
    parse_result,
    payment,
    public_key,
    refund,
    vector,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from paynotify_wechatpay.testing import V3SigningKey, generate_v3_platform_certificate

wechatpayv3 = pytest.importorskip(
    "wechatpayv3", reason="wechatpayv3 is not installed (pip install wechatpayv3) - interop not checked"
)


def merchant_private_key() -> str:
    """The SDK wants the merchant's own API key to exist; it is not used to verify anything."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def sdk(signer: V3SigningKey, tmp_path: Path, *, key: str | None = None, mchid: str = MCHID) -> Any:
    options: dict[str, Any] = {}
    if signer.certificate_pem is None:
        options = {"public_key": signer.public_key_pem, "public_key_id": signer.key_id}
    else:
        (tmp_path / f"{signer.key_id}.pem").write_text(signer.certificate_pem)
        options = {"cert_dir": str(tmp_path)}
    return wechatpayv3.WeChatPay(
        wechatpay_type=wechatpayv3.WeChatPayType.NATIVE,
        mchid=mchid,
        private_key=merchant_private_key(),
        cert_serial_no="0" * 40,
        appid=APPID,
        apiv3_key=key or apiv3_key(),
        **options,
    )


@pytest.mark.parametrize("mode", ["certificate", "public key"])
def test_sdk_verifies_and_decrypts_our_payment(mode: str, tmp_path: Path) -> None:
    signer = certificate() if mode == "certificate" else public_key()
    notify = payment(signer, out_trade_no="interop-1", total=1234)
    decoded = sdk(signer, tmp_path).callback(*notify)
    assert decoded is not None, "the SDK refused our notification"
    ours = parse_result(notify)
    assert decoded["event_type"] == ours.raw["event_type"] == "TRANSACTION.SUCCESS"
    assert decoded["id"] == ours.raw["id"]
    resource = decoded["resource"]
    assert resource["out_trade_no"] == ours.order_id == "interop-1"
    assert resource["transaction_id"] == ours.transaction_id
    assert resource["amount"]["total"] == 1234
    assert {k: v for k, v in ours.raw.items() if k in resource} == resource


def test_sdk_verifies_and_decrypts_our_refund(tmp_path: Path) -> None:
    notify = refund(public_key(), out_refund_no="interop-r", refund_fee=500)
    decoded = sdk(public_key(), tmp_path).callback(*notify)
    assert decoded is not None
    assert decoded["resource"]["out_refund_no"] == parse_result(notify).refund_id == "interop-r"
    assert decoded["resource"]["amount"]["refund"] == 500


def test_sdk_refuses_what_we_refuse(tmp_path: Path) -> None:
    headers, body = payment(certificate())
    forged = body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCESS" ')
    assert sdk(certificate(), tmp_path).callback(headers, forged) is None
    assert sdk(certificate(), tmp_path, key="k" * 32).callback(headers, body) is None  # wrong APIv3 key
    # Another key under the same serial (an unknown serial would send the SDK to the network).
    impostor = generate_v3_platform_certificate(serial=int(certificate().key_id, 16))
    (tmp_path / "impostor").mkdir()
    assert sdk(impostor, tmp_path / "impostor").callback(headers, body) is None


def test_sdk_agrees_on_the_real_vector(tmp_path: Path) -> None:
    headers, body = vector()
    (tmp_path / f"{VECTOR_SERIAL}.pem").write_text((VECTOR / "platform_cert.pem").read_text())
    client = wechatpayv3.WeChatPay(
        wechatpay_type=wechatpayv3.WeChatPayType.NATIVE,
        mchid="1234567890",
        private_key=merchant_private_key(),
        cert_serial_no="0" * 40,
        appid="054aa7d7a2a54ab5898df65bd96f001c",
        apiv3_key=(VECTOR / "apiv3.key").read_text(),
        cert_dir=str(tmp_path),
    )
    # The SDK insists on Wechatpay-Signature-Type, which the vector (absent = RSA) does not carry.
    decoded = client.callback({**headers, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}, body)
    assert decoded is not None
    assert decoded["resource"]["out_contract_code"] == "21640bdbd08e473e828f3206a2741c6e"
    assert decoded["event_type"] == json.loads(body)["event_type"]
