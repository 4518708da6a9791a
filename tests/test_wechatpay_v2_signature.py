"""The v2 signature rule: known answers, the algorithm from the account (never the message), and
every way a sign can be missing or wrong."""

from __future__ import annotations

import re

import pytest
from _wechatpay_v2 import APPID, MCH_ID, account, key, parse, payment
from paynotify_wechatpay._v2_signature import sign, sign_content, verify
from paynotify_wechatpay._xml import to_xml
from paynotify_wechatpay.testing import sign_v2

from paynotify import Kind, MalformedNotification, Status, VerificationError

# The worked example of WeChat Pay's own "签名算法" (signature algorithm) page.
DOC_FIELDS = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
DOC_KEY = "192006250b4c09247ec02edce69f6a2d"


def test_documented_example_md5_and_hmac_sha256() -> None:
    assert sign_content(DOC_FIELDS, DOC_KEY.encode()) == (
        b"appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
        b"&key=192006250b4c09247ec02edce69f6a2d"
    )
    assert sign_v2(DOC_FIELDS, DOC_KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert sign_v2(DOC_FIELDS, DOC_KEY, "HMAC-SHA256") == (
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    )


def test_content_rule_sorts_drops_empty_and_sign_and_encodes_nothing() -> None:
    fields = {"b": "x y&z=1", "a": "测试", "sign": "ABC", "empty": "", "A": "upper"}
    assert sign_content(fields, b"K") == "A=upper&a=测试&b=x y&z=1&key=K".encode()


def test_values_are_signed_exactly_as_received() -> None:
    fields = {**DOC_FIELDS, "attach": " padded "}
    signature = sign(fields, DOC_KEY.encode(), "MD5")
    verify({**fields, "sign": signature}, DOC_KEY.encode(), "MD5")
    with pytest.raises(VerificationError):
        verify({**fields, "attach": "padded", "sign": signature}, DOC_KEY.encode(), "MD5")


def test_md5_account_verifies_md5_with_or_without_sign_type() -> None:
    assert parse(payment()).is_paid
    assert parse(payment(include_sign_type=True)).raw["sign_type"] == "MD5"


def test_hmac_account_verifies_hmac_with_or_without_sign_type() -> None:
    hmac_account = account(sign_type="HMAC-SHA256")
    body = payment(sign_type="HMAC-SHA256")
    assert b"sign_type" not in body
    assert parse(body, hmac_account).is_paid
    assert parse(payment(sign_type="HMAC-SHA256", include_sign_type=True), hmac_account).is_paid


def test_hmac_account_refuses_md5_signed_notifications() -> None:
    hmac_account = account(sign_type="HMAC-SHA256")
    with pytest.raises(VerificationError, match="HMAC-SHA256 signature"):
        parse(payment(sign_type="MD5"), hmac_account)  # no sign_type: an MD5 sign is too short
    with pytest.raises(VerificationError, match=r"sign_type='MD5'.*configured for 'HMAC-SHA256'"):
        parse(payment(sign_type="MD5", include_sign_type=True), hmac_account)


def test_message_saying_md5_cannot_downgrade_an_hmac_account() -> None:
    # Even HMAC-signed content that says sign_type=MD5 is refused: the message never picks.
    fields = {**DOC_FIELDS, "appid": APPID, "mch_id": MCH_ID, "sign_type": "MD5"}
    fields.update(return_code="SUCCESS", result_code="SUCCESS", out_trade_no="o-1", total_fee="1")
    fields["sign"] = sign_v2(fields, key(), "HMAC-SHA256")
    body = to_xml(dict(fields)).encode()
    with pytest.raises(VerificationError, match="never taken from the message"):
        parse(body, account(sign_type="HMAC-SHA256"))


def test_md5_account_refuses_hmac_signed_notifications() -> None:
    with pytest.raises(VerificationError, match="MD5 signature"):
        parse(payment(sign_type="HMAC-SHA256"))
    with pytest.raises(VerificationError, match=r"sign_type='HMAC-SHA256'.*configured for 'MD5'"):
        parse(payment(sign_type="HMAC-SHA256", include_sign_type=True))


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_sign_type_is_signed_when_present(sign_type: str) -> None:
    acct = account(sign_type=sign_type)  # type: ignore[arg-type]
    body = payment(sign_type=sign_type, include_sign_type=True)  # type: ignore[arg-type]
    assert parse(body, acct).raw["sign_type"] == sign_type
    stripped = re.sub(rb"<sign_type>.*?</sign_type>", b"", body)
    assert stripped != body
    with pytest.raises(VerificationError, match="does not match"):
        parse(stripped, acct)


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_missing_empty_and_malformed_sign(sign_type: str) -> None:
    acct = account(sign_type=sign_type)  # type: ignore[arg-type]
    body = payment(sign_type=sign_type)  # type: ignore[arg-type]
    good = re.search(rb"<sign><!\[CDATA\[([0-9A-F]+)\]\]></sign>", body)
    assert good is not None
    signature = good.group(1)
    with pytest.raises(VerificationError, match="no sign"):
        parse(body.replace(good.group(0), b""), acct)
    for empty in (b"<sign></sign>", b"<sign/>", b"<sign><![CDATA[]]></sign>"):
        with pytest.raises(VerificationError, match="empty sign"):
            parse(body.replace(good.group(0), empty), acct)
    for bad in (signature[:-1], signature + b"0", signature[:-1] + b"G", b" " + signature[1:]):
        with pytest.raises(VerificationError, match="hex digits expected"):
            parse(body.replace(signature, bad), acct)
    for wrong in (signature[:-1] + (b"0" if signature[-1:] != b"0" else b"1"), b"0" * len(signature)):
        with pytest.raises(VerificationError, match="does not match"):
            parse(body.replace(signature, wrong), acct)
    # Hex case does not matter: a lower-case sign is the same MAC.
    assert parse(body.replace(signature, signature.lower()), acct).is_paid


def test_wrong_api_key_is_refused_without_revealing_the_expected_sign() -> None:
    body = payment(api_key=key("other"))
    with pytest.raises(VerificationError) as info:
        parse(body)
    expected = sign_v2({"appid": APPID}, key())  # any signature we could compute must not leak
    assert expected not in str(info.value)
    assert key() not in str(info.value)
    assert key("other") not in str(info.value)


def test_verification_comes_before_business_fields() -> None:
    # A forged message with nonsense business fields is a VerificationError, not Malformed.
    body = payment(total_fee=1).replace(b"<total_fee>1</total_fee>", b"<total_fee>abc</total_fee>")
    with pytest.raises(VerificationError):
        parse(body)
    body = re.sub(rb"<result_code>.*?</result_code>", b"", payment())
    with pytest.raises(VerificationError):
        parse(body)


def test_unknown_fields_are_signed_and_kept() -> None:
    body = payment(new_field_2030="value", coupon_fee_0="100", coupon_id_0="c-1")
    result = parse(body)
    assert result.raw["new_field_2030"] == "value"
    assert result.raw["coupon_id_0"] == "c-1"
    with pytest.raises(VerificationError):
        parse(body.replace(b"[value]", b"[other]"))


def test_return_code_fail_is_never_a_payment() -> None:
    body = (
        b"<xml><return_code><![CDATA[FAIL]]></return_code>"
        b"<return_msg><![CDATA[\xe7\xad\xbe\xe5\x90\x8d\xe5\xa4\xb1\xe8\xb4\xa5]]></return_msg></xml>"
    )
    with pytest.raises(MalformedNotification, match="return_code 'FAIL': '签名失败'"):
        parse(body)
    # Not even with every business field and a valid signature over them.
    signed = payment(return_code="FAIL")
    with pytest.raises(MalformedNotification, match="never a payment"):
        parse(signed)
    with pytest.raises(MalformedNotification, match="no return_code"):
        parse(payment(return_code=None))


def test_result_code_fail_is_a_verified_failed_payment() -> None:
    result = parse(payment(result_code="FAIL"))
    assert (result.kind, result.status, result.provider_status) == (Kind.PAYMENT, Status.FAILED, "FAIL")
    assert not result.is_paid
    assert result.raw["err_code"] == "SYSTEMERROR"
    assert result.raw["err_code_des"] == "系统错误"
    assert (result.app_id, result.merchant_id) == (APPID, MCH_ID)
