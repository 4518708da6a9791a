"""The v3 query signatures checked against an independent implementation, the wechatpayv3 SDK: its
Authorization is what ours is (so the emulator's check is WeChat Pay's rule, not only ours), and it
verifies the emulator's signed answers and decrypts its certificates."""

from __future__ import annotations

import json

import pytest
from _query_emulator_send import emulator_send
from cryptography import x509
from paynotify_wechatpay._v3_api_auth import authorization, parse_authorization, verify_request_signature
from test_query_v3 import API, account_of, apiv3, emulator, merchant

from paynotify import ApiRequest, ApiResponse

wechatpayv3_utils = pytest.importorskip("wechatpayv3.utils", reason="wechatpayv3 is not installed")


def test_our_authorization_is_the_sdks() -> None:
    path = "/v3/pay/transactions/out-trade-no/order-1?mchid=10000100"
    theirs = wechatpayv3_utils.build_authorization(
        path, "GET", "10000100", "ABC123", merchant(), nonce_str="N0NCE"
    )
    fields = parse_authorization(theirs)
    assert fields is not None
    ours = authorization(
        merchant(), mchid="10000100", serial_no="ABC123", method="GET", path_query=path,
        timestamp=fields["timestamp"], nonce="N0NCE",
    )  # fmt: skip
    assert ours == theirs  # PKCS#1 v1.5 is deterministic: the same message gives the same bytes
    public = merchant().public_key()
    assert verify_request_signature(fields, public, method="GET", path_query=path, body=b"")


async def test_the_sdk_verifies_the_emulators_answers_and_decrypts_its_certificates() -> None:
    emu = emulator()
    emu.pay("order-1")
    acct = account_of(emu)
    async with emulator_send(emu) as send:
        sent: list[ApiResponse] = []

        async def keep(request: ApiRequest) -> ApiResponse:
            response = await send(request)
            sent.append(response)
            return response

        await API.download_certificates(keep, acct)
    (response,) = sent
    headers = response.headers
    assert emu.signing_key.certificate_pem is not None
    public = x509.load_pem_x509_certificate(emu.signing_key.certificate_pem.encode()).public_key()
    body = response.body.decode()
    assert wechatpayv3_utils.rsa_verify(
        headers["wechatpay-timestamp"],
        headers["wechatpay-nonce"],
        body,
        headers["wechatpay-signature"],
        public,
    )
    (item,) = json.loads(body)["data"]
    sealed = item["encrypt_certificate"]
    pem = wechatpayv3_utils.aes_decrypt(
        sealed["nonce"], sealed["ciphertext"], sealed["associated_data"], apiv3()
    )
    assert pem == emu.signing_key.certificate_pem
