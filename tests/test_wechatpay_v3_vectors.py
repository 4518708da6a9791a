"""The real WeChat Pay v3 notification (tests/vectors/wechatpay/v3_payscore, see PROVENANCE.md):
it verifies with the provider's clock pinned to its timestamp, comes out as an UnhandledEvent,
and is refused after any single-byte change, with the real clock, or under another key."""

from __future__ import annotations

import httpx
import pytest
from _wechatpay_v3 import (
    VECTOR,
    VECTOR_SERIAL,
    VECTOR_TIMESTAMP,
    lower,
    vector,
    vector_settings,
)
from paynotify_wechatpay import WeChatPayV3Provider, WeChatPayV3Settings
from paynotify_wechatpay._v3_crypto import decrypt_resource, resource_json
from paynotify_wechatpay.testing import generate_v3_platform_certificate

from paynotify import (
    Account,
    ConfigurationError,
    InboundRequest,
    Notifier,
    PaymentResult,
    UnhandledEvent,
    VerificationError,
    make_event_id,
)

PINNED = WeChatPayV3Provider(clock=lambda: VECTOR_TIMESTAMP)
EVENT_ID = "3119dfba-e649-5eec-ab1e-3412bc4d2e17"
DECRYPTED = {
    "mchid": "1234567890",
    "appid": "054aa7d7a2a54ab5898df65bd96f001c",
    "create_time": "2020-06-30T12:12:00+08:00",
    "out_contract_code": "21640bdbd08e473e828f3206a2741c6e",
}


def vector_account(**overrides: object) -> Account[WeChatPayV3Settings]:
    return Account("payscore", PINNED, WeChatPayV3Settings(**vector_settings(**overrides)))


def parse_vector(
    headers: dict[str, str], body: bytes, provider: WeChatPayV3Provider = PINNED
) -> PaymentResult | UnhandledEvent:
    parsed = provider.parse(InboundRequest("POST", "notify", lower(headers), body=body), vector_account())
    assert not isinstance(parsed, list)
    return parsed


def test_vector_files_are_the_shared_ones_byte_for_byte() -> None:
    headers, body = vector()
    assert body.startswith(b'{"id":"3119dfba')
    assert body.endswith(b'"}}')  # no trailing newline
    assert "Wechatpay-Signature-Type" not in headers  # absent: RSA
    assert (VECTOR / "apiv3.key").read_bytes() == b"testMchAPIv3Key0"


def test_the_certificate_serial_is_read_from_the_certificate() -> None:
    assert vector_account().settings.keyring.key_ids == (VECTOR_SERIAL,)


def test_vector_verifies_and_is_an_unhandled_payscore_event() -> None:
    event = parse_vector(*vector())
    assert isinstance(event, UnhandledEvent)
    assert event.provider == "wechatpay-v3"
    assert event.account == "payscore"
    assert event.event_type == "PAYSCORE.USER_OPEN_SERVICE"
    assert event.key_id == VECTOR_SERIAL
    assert event.event_id == make_event_id("payscore", "event", "PAYSCORE.USER_OPEN_SERVICE", EVENT_ID)
    assert event.raw["id"] == EVENT_ID
    assert event.raw["summary"] == "签约成功"
    assert event.raw["resource"]["associated_data"] == "payscore"


def test_vector_serial_in_lower_case_still_verifies() -> None:
    headers, body = vector()
    headers["Wechatpay-Serial"] = VECTOR_SERIAL.lower()
    assert parse_vector(headers, body).key_id == VECTOR_SERIAL


def test_vector_resource_decrypts_with_its_published_key() -> None:
    # The vector's key is 16 bytes (Go made it AES-128-GCM); the cipher code is the same.
    _, body = vector()
    event = parse_vector(*vector())
    key = (VECTOR / "apiv3.key").read_bytes()
    assert resource_json(decrypt_resource(event.raw["resource"], key)) == DECRYPTED
    assert b'"nonce":"Kj7QIyUiYx1q"' in body


def test_a_16_byte_apiv3_key_is_refused_by_the_settings() -> None:
    notifier = Notifier("memory://")
    with pytest.raises(ConfigurationError, match=r"apiv3_key: .*exactly 32 bytes; this one has 16 bytes"):
        notifier.add_account("payscore", PINNED, **vector_settings(apiv3_key="testMchAPIv3Key0"))


@pytest.mark.parametrize(
    ("offset", "accepted"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)]
)
def test_vector_replay_window(offset: int, accepted: bool) -> None:
    provider = WeChatPayV3Provider(clock=lambda: VECTOR_TIMESTAMP + offset)
    if accepted:
        assert isinstance(parse_vector(*vector(), provider=provider), UnhandledEvent)
    else:
        with pytest.raises(VerificationError, match="replay window"):
            parse_vector(*vector(), provider=provider)


def test_vector_with_the_real_clock_is_refused_as_stale() -> None:
    with pytest.raises(VerificationError, match=r"s old, outside the 300 s replay window"):
        parse_vector(*vector(), provider=WeChatPayV3Provider())


def test_every_single_byte_change_of_the_vector_body_is_refused() -> None:
    headers, body = vector()
    for i in range(len(body)):
        for flip in (0x01, 0x20):
            changed = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
            with pytest.raises(VerificationError, match="does not verify"):
                parse_vector(headers, changed)


@pytest.mark.parametrize("header", ["Wechatpay-Nonce", "Wechatpay-Signature"])
def test_a_changed_header_of_the_vector_is_refused(header: str) -> None:
    headers, body = vector()
    value = headers[header]
    headers[header] = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    with pytest.raises(VerificationError):
        parse_vector(headers, body)


def test_vector_under_another_certificate_with_the_same_serial_is_refused() -> None:
    impostor = generate_v3_platform_certificate(serial=int(VECTOR_SERIAL, 16))
    acct = Account(
        "payscore",
        PINNED,
        WeChatPayV3Settings(**vector_settings(platform_certificates=impostor.certificate_pem)),
    )
    headers, body = vector()
    with pytest.raises(VerificationError, match=f"does not verify with platform certificate {VECTOR_SERIAL}"):
        PINNED.parse(InboundRequest("POST", "notify", lower(headers), body=body), acct)


async def test_vector_through_the_asgi_route_is_acknowledged_and_offered_to_unhandled_hooks() -> None:
    notifier = Notifier("memory://")
    notifier.add_account("payscore", PINNED, **vector_settings())
    delivered: list[PaymentResult] = []
    unhandled: list[UnhandledEvent] = []
    notifier.subscribe(delivered.append)
    notifier.on_unhandled(unhandled.append)
    headers, body = vector()
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://paynotify.test") as client:
        response = await client.post("/payscore/notify", content=body, headers=headers)
        forged = await client.post(
            "/payscore/notify", content=body.replace(b"USER_OPEN", b"USER_SHUT"), headers=headers
        )
    await notifier.aclose()
    assert (response.status_code, response.content) == (204, b"")
    assert forged.status_code == 401
    assert forged.json()["code"] == "FAIL"
    assert [e.event_type for e in unhandled] == ["PAYSCORE.USER_OPEN_SERVICE"]
    assert delivered == []
