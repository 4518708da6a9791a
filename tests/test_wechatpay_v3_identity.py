"""Every outcome of the v3 path frozen: a broad set of notifications (the real vector, resources
from the testing helpers, direct-merchant and service-provider accounts, payments, refunds,
combined orders, transfers, optional fields absent or empty, and one refusal per rule) goes through
`WeChatPayV3Provider.parse`, and each result or refusal must be exactly the one in
vectors/wechatpay/v3_outcomes.json.

That file was written by the code before issue 16's trims of the v3 path (commit 5bcec17), so a
faster mapping, decryption or verification must hand the app the very same thing: each field's
repr (types, Decimal places, time zones, raw's key order) for a result, the class, message,
event_id and raw for a refusal. Regenerate it (`python tests/test_wechatpay_v3_identity.py`) only
for a change of outcome that is meant, and say so in the commit.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from _wechatpay_v3 import (
    APPID,
    MCHID,
    NOW,
    SP_APPID,
    SP_MCHID,
    SUB_MCHID,
    VECTOR_TIMESTAMP,
    account,
    apiv3_key,
    certificate,
    lower,
    public_key,
    sp_account,
    vector,
    vector_settings,
)
from paynotify_wechatpay import WeChatPayV3Provider, WeChatPayV3Settings
from paynotify_wechatpay._v3_envelope import ENVELOPE_FIELDS, Envelope
from paynotify_wechatpay.testing import (
    encrypt_v3_resource,
    sign_v3,
    v3_refund_resource,
    v3_transaction_resource,
)

from paynotify import Account, InboundRequest, InvalidContent, NotificationError

OUTCOMES = Path(__file__).parent / "vectors" / "wechatpay" / "v3_outcomes.json"
PAID_AT = "2024-01-02T03:04:05+08:00"
SUB_APPID = "wx000000000000sub1"
NONCE = "fixedNonce12"  # the resource's GCM nonce, fixed so that a raw with the ciphertext is stable
HEADER_NONCE = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"

Notify = tuple[dict[str, str], bytes]
# A resource encrypted with another APIv3 key (a fixed one: the result keeps the ciphertext).
OTHER_KEYS = encrypt_v3_resource({"a": 1}, "k" * 32, associated_data="profitsharing", nonce=NONCE)


@functools.cache
def accounts() -> dict[str, Account[WeChatPayV3Settings]]:
    vector_account = Account(
        "payscore",
        WeChatPayV3Provider(clock=lambda: VECTOR_TIMESTAMP),
        WeChatPayV3Settings(**vector_settings()),
    )
    return {
        "direct": account(),
        "sp": sp_account(),
        "sp-sub": sp_account("sp-sub", sub_mchid=SUB_MCHID),
        "sp-subapp": sp_account("sp-subapp", sub_appid=SUB_APPID),
        "vector": vector_account,
    }


def body(
    resource: dict[str, Any] | bytes | None,
    event_type: str = "TRANSACTION.SUCCESS",
    *,
    original_type: str = "transaction",
    summary: str | None = "支付成功",
    encrypted: dict[str, Any] | None = None,
    **outer: Any,
) -> bytes:
    """A notification body as WeChat Pay writes it (compact JSON, UTF-8), with a fixed id, time and
    GCM nonce; `encrypted` stands in for the encrypted resource, `outer` changes outer fields."""
    envelope: dict[str, Any] = {
        "id": "EV-0001",
        "create_time": "2023-11-15T06:13:20+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": encrypted
        if encrypted is not None
        else encrypt_v3_resource(
            resource if resource is not None else {},
            apiv3_key(),
            associated_data=original_type,
            original_type=original_type,
            nonce=NONCE,
        ),
    }
    envelope.update(outer)
    return json.dumps({k: v for k, v in envelope.items() if v is not None}, ensure_ascii=False,
                      separators=(",", ":")).encode()  # fmt: skip


def signed(raw: bytes, signer: str = "certificate", **headers: Any) -> Notify:
    key = certificate() if signer == "certificate" else public_key()
    return sign_v3(raw, key, timestamp=headers.pop("timestamp", NOW), nonce=HEADER_NONCE, **headers), raw


def pay(**extra: Any) -> dict[str, Any]:
    """A direct merchant's paid transaction resource; a field given as None is left out."""
    values: dict[str, Any] = {
        "appid": APPID,
        "mchid": MCHID,
        "out_trade_no": "order-1",
        "success_time": PAID_AT,
    }
    values.update(extra)
    return v3_transaction_resource(**values)


def sp_pay(**extra: Any) -> dict[str, Any]:
    return pay(**{"appid": SP_APPID, "mchid": SP_MCHID, "sub_mchid": SUB_MCHID, **extra})


def ref(**extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"mchid": MCHID, "out_trade_no": "order-1", "out_refund_no": "refund-1",
                              "success_time": PAID_AT, "total": 8888, "refund": 1000}  # fmt: skip
    values.update(extra)
    return v3_refund_resource(**values)


def sp_ref(**extra: Any) -> dict[str, Any]:
    return ref(**{"mchid": SP_MCHID, "sub_mchid": SUB_MCHID, **extra})


def refund_body(resource: dict[str, Any]) -> bytes:
    return body(resource, f"REFUND.{resource.get('refund_status', 'SUCCESS')}", original_type="refund",
                summary="退款状态变更")  # fmt: skip


def sub_order(order: str, state: str = "SUCCESS", **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "mchid": MCHID, "trade_type": "JSAPI", "trade_state": state, "bank_type": "CMC", "attach": "",
        "success_time": PAID_AT, "out_trade_no": order, "transaction_id": "420000000120240102" + order[-1],
        "amount": {"total_amount": 100, "payer_amount": 100, "currency": "CNY", "payer_currency": "CNY"},
    }  # fmt: skip
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def combined(*subs: dict[str, Any], **changes: Any) -> bytes:
    resource: dict[str, Any] = {
        "combine_appid": APPID, "combine_mchid": MCHID, "combine_out_trade_no": "C-20240102-1",
        "combine_payer_info": {"openid": "o-combined"}, "sub_orders": list(subs),
    }  # fmt: skip
    resource.update(changes)
    return body({k: v for k, v in resource.items() if v is not None})


def transfer(state: str = "SUCCESS", **changes: Any) -> bytes:
    resource: dict[str, Any] = {
        "out_bill_no": "plfk2020042013", "transfer_bill_no": "1330000071100999991182020050700019480001",
        "state": state, "mch_id": MCHID, "transfer_amount": 2345, "openid": "o-transfer",
        "create_time": "2024-01-02T03:04:00+08:00", "update_time": PAID_AT,
    }  # fmt: skip
    resource.update(changes)
    return body({k: v for k, v in resource.items() if v is not None}, "MCHTRANSFER.BILL.FINISHED",
                original_type="mch_payment", summary="商家转账单据终态通知")  # fmt: skip


def good_encrypted(**changes: Any) -> dict[str, Any]:
    """The encrypted resource of a good payment, with fields changed (None removes one)."""
    resource = encrypt_v3_resource(_plain(pay()), apiv3_key(), nonce=NONCE)
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


def _plain(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()


@functools.cache
def cases() -> dict[str, tuple[str, Notify]]:
    """Case name -> (account, notification)."""
    table: dict[str, tuple[str, Notify]] = {}

    def add(name: str, notify: Notify | bytes, acct: str = "direct") -> None:
        assert name not in table, name
        table[name] = (acct, notify if isinstance(notify, tuple) else signed(notify))

    # The real vector: a PAYSCORE event, verified, unhandled.
    add("vector payscore", vector(), "vector")

    # Direct merchant payments: every trade_state, optional fields absent or empty, shapes at the edge.
    for state in ("SUCCESS", "REFUND", "NOTPAY", "USERPAYING", "CLOSED", "REVOKED", "PAYERROR"):
        add(f"pay {state}", body(pay(trade_state=state), "TRANSACTION.SUCCESS" if state == "SUCCESS"
                                 else "TRANSACTION.FAIL"))  # fmt: skip
    add("pay signed by the public key", signed(body(pay()), "public key"))
    add("pay without signature type", signed(body(pay()), signature_type=None))
    add(
        "pay NOTPAY no transaction_id",
        body(pay(trade_state="NOTPAY", transaction_id=None, success_time=None)),
    )
    add(
        "pay NOTPAY empty transaction_id", body(pay(trade_state="NOTPAY", transaction_id="", success_time=""))
    )
    add("pay NOTPAY no amount", body(pay(trade_state="NOTPAY", amount=None)))
    add("pay NOTPAY amount empty", body(pay(trade_state="NOTPAY", amount={})))
    add("pay no payer", body(pay(payer=None)))
    add("pay payer empty", body(pay(payer={})))
    add("pay payer openid empty", body(pay(payer={"openid": ""})))
    add("pay payer sp_openid only", body(pay(payer={"sp_openid": "o-sp"})))
    add("pay payer openid not a string", body(pay(payer={"openid": 12345})))
    add("pay no currency", body(pay(amount={"total": 100})))
    add("pay currency empty", body(pay(amount={"total": 100, "currency": ""})))
    add(
        "pay USD",
        body(pay(amount={"total": 100, "payer_total": 700, "currency": "USD", "payer_currency": "CNY"})),
    )
    add("pay zero", body(pay(total=0)))
    add("pay one fen", body(pay(total=1)))
    add("pay largest", body(pay(total=10**18 - 1)))
    add("pay Z time", body(pay(success_time="2024-01-01T19:04:05Z")))
    add("pay fractional time", body(pay(success_time="2024-01-02T03:04:05.123+08:00")))
    add("pay western time", body(pay(success_time="2024-01-01T14:04:05-05:00")))
    add("pay longest ids", body(pay(out_trade_no="A-_|*" + "9" * 27, transaction_id="1" * 32)))
    add("pay attach and emoji", body(pay(attach="测试 \U0001f600", trade_state_desc="支付成功\U0001f4b0")))
    details: dict[str, Any] = {
        "promotion_detail": [{"coupon_id": "109519", "amount": 100}],
        "scene_info": {"device_id": "0134"},
    }
    add("pay extra fields", body(pay(bank_type="CMC", **details)))
    add("pay resource names clash with the envelope", body(pay(id="resource-id", summary="resource summary")))
    add("pay no optional envelope fields", body(pay(), summary=None, resource_type=None, create_time=None))
    add("pay sub_appid on a direct account", body(pay(sub_appid="wx-ignored")))
    add("pay escaped JSON", signed(body(pay()).replace("支付成功".encode(), b"\\u652f\\u4ed8\\u6210\\u529f")))

    # Payments refused for their content (InvalidContent, with raw and event_id).
    refused: dict[str, dict[str, Any]] = {
        "no out_trade_no": {"out_trade_no": None},
        "out_trade_no empty": {"out_trade_no": ""},
        "out_trade_no int": {"out_trade_no": 12345},
        "out_trade_no space": {"out_trade_no": "order 1"},
        "out_trade_no 33": {"out_trade_no": "a" * 33},
        "no trade_state": {"trade_state": None},
        "trade_state unknown": {"trade_state": "PAID"},
        "trade_state int": {"trade_state": 1},
        "trade_state lower": {"trade_state": "success"},
        "no transaction_id": {"transaction_id": None},
        "transaction_id empty": {"transaction_id": ""},
        "transaction_id letters": {"transaction_id": "42000abc"},
        "transaction_id 33": {"transaction_id": "1" * 33},
        "transaction_id int": {"transaction_id": 4200000},
        "no success_time": {"success_time": None},
        "success_time space": {"success_time": "2024-01-02 03:04:05"},
        "success_time naive": {"success_time": "2024-01-02T03:04:05"},
        "success_time month 13": {"success_time": "2024-13-02T03:04:05+08:00"},
        "success_time int": {"success_time": 1704135845},
        "success_time 7 digits": {"success_time": "2024-01-02T03:04:05.1234567+08:00"},
        "no amount": {"amount": None},
        "amount list": {"amount": [8888]},
        "total str": {"amount": {"total": "8888"}},
        "total float": {"amount": {"total": 88.88}},
        "total bool": {"amount": {"total": True}},
        "total negative": {"amount": {"total": -1}},
        "total too large": {"amount": {"total": 10**18}},
        "payer_total str": {"amount": {"total": 1, "payer_total": "1"}},
        "payer_total negative": {"amount": {"total": 1, "payer_total": -1}},
        "currency int": {"amount": {"total": 1, "currency": 156}},
        "no mchid": {"mchid": None},
        "mchid int": {"mchid": 1900000001},
        "no appid": {"appid": None},
        "appid empty": {"appid": ""},
        "payer str": {"payer": "openid"},
        "sp resource on a direct account": {"sp_mchid": SP_MCHID},
    }
    for name, extra in refused.items():
        add(f"pay refused: {name}", body(pay(**extra)))
    payscore = {
        "mchid": "1234567890",
        "appid": APPID,
        "out_contract_code": "21640bdbd08e473e828f3206a2741c6e",
    }
    add("pay refused: the vector's resource", body(payscore))
    add("pay refused: NOTPAY bad transaction_id", body(pay(trade_state="NOTPAY", transaction_id="x1")))
    add("pay refused: NOTPAY total str", body(pay(trade_state="NOTPAY", amount={"total": "1"})))

    # Service-provider payments.
    add("sp pay", body(sp_pay()), "sp")
    add("sp pay sub-merchant account", body(sp_pay()), "sp-sub")
    add("sp pay payer both", body(sp_pay(payer={"sp_openid": "sp-o", "sub_openid": "sub-o"})), "sp")
    add("sp pay payer sub only", body(sp_pay(payer={"sub_openid": "sub-o"})), "sp")
    add("sp pay payer sp empty", body(sp_pay(payer={"sp_openid": "", "sub_openid": "sub-o"})), "sp")
    add("sp pay payer openid only", body(sp_pay(payer={"openid": "o-direct"})), "sp")
    add("sp pay payer empty", body(sp_pay(payer={})), "sp")
    add("sp pay with sub_appid", body(sp_pay(sub_appid=SUB_APPID)), "sp")
    add("sp pay sub_appid required", body(sp_pay(sub_appid=SUB_APPID)), "sp-subapp")
    add("sp pay CLOSED", body(sp_pay(trade_state="CLOSED", transaction_id=None, success_time=None)), "sp")
    add("sp pay other sub-merchant", body(sp_pay(sub_mchid="1900000202")), "sp")
    add("sp pay refused: wrong sub_appid", body(sp_pay(sub_appid="wx000000000000sub2")), "sp-subapp")
    add("sp pay refused: no sub_appid", body(sp_pay()), "sp-subapp")
    add("sp pay refused: sub_appid empty", body(sp_pay(sub_appid="")), "sp-subapp")
    add("sp pay refused: sub_appid int", body(sp_pay(sub_appid=1)), "sp-subapp")
    add("sp pay refused: other sp_mchid", body(sp_pay(mchid="1900000999")), "sp")
    add("sp pay refused: sp_mchid int", body(sp_pay(mchid=1900000100)), "sp")
    add("sp pay refused: no sp_mchid", body(sp_pay(mchid=None)), "sp")
    add("sp pay refused: no sub_mchid", body(sp_pay(sub_mchid=None)), "sp")
    add("sp pay refused: no sp_appid", body(sp_pay(appid=None)), "sp")
    add("sp pay refused: direct resource", body(pay()), "sp")
    add("sp pay refused: bad shape", body(sp_pay(out_trade_no="o#1")), "sp")

    # Refunds.
    for status in ("SUCCESS", "ABNORMAL", "CLOSED", "PROCESSING"):
        add(f"refund {status}", refund_body(ref(refund_status=status)))
    add("refund signed by the public key", signed(refund_body(ref()), "public key"))
    add(
        "refund PROCESSING with success_time",
        refund_body(ref(refund_status="PROCESSING", success_time=PAID_AT)),
    )
    add("refund SUCCESS no success_time", refund_body(ref(success_time=None)))
    add("refund SUCCESS empty success_time", refund_body(ref(success_time="")))
    add("refund no transaction_id", refund_body(ref(transaction_id=None)))
    add("refund empty transaction_id", refund_body(ref(transaction_id="")))
    add("refund no refund_id", refund_body(ref(refund_id=None)))
    add("refund whole", refund_body(ref(refund=8888)))
    add("refund zero", refund_body(ref(refund=0)))
    add("refund amount minimal", refund_body(ref(amount={"total": 8888, "refund": 100})))
    add("refund with currency", refund_body(ref(amount={"total": 8888, "refund": 100, "currency": "HKD"})))
    add("refund longest out_refund_no", refund_body(ref(out_refund_no="r@-_|*" + "7" * 58)))
    add("refund with appid", refund_body(ref(appid="wx-in-refund")))
    refused_refunds: dict[str, dict[str, Any]] = {
        "no out_refund_no": {"out_refund_no": None},
        "out_refund_no 65": {"out_refund_no": "r" * 65},
        "out_refund_no hash": {"out_refund_no": "r#1"},
        "no out_trade_no": {"out_trade_no": None},
        "no refund_status": {"refund_status": None},
        "refund_status unknown": {"refund_status": "DONE"},
        "refund_id letters": {"refund_id": "503x"},
        "transaction_id letters": {"transaction_id": "42x"},
        "refund more than total": {"refund": 8889},
        "no refund": {"amount": {"total": 1}},
        "no total": {"amount": {"refund": 1}},
        "refund bool": {"amount": {"total": 1, "refund": False}},
        "payer_refund str": {"amount": {"total": 2, "refund": 1, "payer_refund": "1"}},
        "payer_total float": {"amount": {"total": 2, "refund": 1, "payer_total": 2.0}},
        "success_time bad": {"success_time": "yesterday"},
        "no mchid": {"mchid": None},
        "currency list": {"amount": {"total": 2, "refund": 1, "currency": ["CNY"]}},
    }
    for name, extra in refused_refunds.items():
        add(f"refund refused: {name}", refund_body(ref(**extra)))
    add("sp refund", refund_body(sp_ref()), "sp")
    add("sp refund sub-merchant account", refund_body(sp_ref()), "sp-sub")
    add("sp refund sub_appid account", refund_body(sp_ref()), "sp-subapp")
    add("sp refund refused: other sp_mchid", refund_body(sp_ref(mchid="1900000999")), "sp")
    add("sp refund refused: no sub_mchid", refund_body(sp_ref(sub_mchid=None)), "sp")
    add("sp refund refused: direct resource", refund_body(ref()), "sp")
    add("refund refused: sp resource on a direct account", refund_body(sp_ref()))

    # Combined orders and transfers (they share the mapping's helpers).
    add("combined two", combined(sub_order("sub-1"), sub_order("sub-2", "NOTPAY", transaction_id=None)))
    add("combined no payer", combined(sub_order("sub-1"), combine_payer_info=None))
    add("combined on a service provider", combined(sub_order("sub-1")), "sp")
    add("combined refused: empty", combined())
    add("combined refused: sub-order amount", combined(sub_order("sub-1", amount={"total_amount": "1"})))
    add("combined refused: no combine_appid", combined(sub_order("sub-1"), combine_appid=None))
    for state in ("SUCCESS", "FAIL", "CANCELLED", "PROCESSING"):
        add(f"transfer {state}", transfer(state))
    add("transfer no bill no", transfer(transfer_bill_no=None, openid=""))
    add("transfer refused: amount", transfer(transfer_amount=1.5))
    add("transfer refused: no update_time", transfer(update_time=None))

    # Other events: verified, unhandled; decrypted when they decrypt.
    add(
        "payscore decrypts",
        body({"out_contract_code": "c-1"}, "PAYSCORE.USER_OPEN_SERVICE", summary="签约成功"),
    )
    add(
        "profit sharing does not decrypt",
        body(None, "PROFITSHARING.SUCCESS", encrypted=OTHER_KEYS),
    )

    # The envelope, read strictly (after verification).
    def raw_body(name: str, text: bytes) -> None:
        add(f"envelope refused: {name}", text)

    raw_body("not UTF-8", b"\xff\xfe{}")
    raw_body("empty", b"")
    raw_body("list", b"[]")
    raw_body("no id", b'{"event_type":"TRANSACTION.SUCCESS","resource":{}}')
    raw_body("id empty", b'{"id":"","event_type":"TRANSACTION.SUCCESS","resource":{}}')
    raw_body("id int", b'{"id":1,"event_type":"TRANSACTION.SUCCESS","resource":{}}')
    raw_body("no event_type", b'{"id":"1","resource":{}}')
    raw_body("event_type null", b'{"id":"1","event_type":null,"resource":{}}')
    raw_body("no resource", b'{"id":"1","event_type":"TRANSACTION.SUCCESS"}')
    raw_body("resource str", b'{"id":"1","event_type":"TRANSACTION.SUCCESS","resource":"x"}')
    raw_body("NaN", b'{"id":"1","event_type":"TRANSACTION.SUCCESS","resource":{"a":NaN}}')
    raw_body("duplicate key", b'{"id":"1","id":"2","event_type":"TRANSACTION.SUCCESS","resource":{}}')
    raw_body("lone surrogate", b'{"id":"\\ud800","event_type":"TRANSACTION.SUCCESS","resource":{}}')
    raw_body("too deep", b'{"id":"1","event_type":"X","resource":{},"d":' + b"[" * 40 + b"]" * 40 + b"}")
    raw_body("trailing garbage", body(pay()) + b"x")
    add("envelope with a BOM", b"\xef\xbb\xbf" + body(pay()))
    add("envelope with escaped surrogate pair", body(pay(), summary="\U0001f600").replace(
        "\U0001f600".encode(), b"\\ud83d\\ude00"))  # fmt: skip

    # The encrypted resource.
    broken: dict[str, dict[str, Any]] = {
        "no algorithm": {"algorithm": None},
        "other algorithm": {"algorithm": "AEAD_AES_128_GCM"},
        "algorithm int": {"algorithm": 1},
        "no nonce": {"nonce": None},
        "nonce short": {"nonce": "fixedNonce1"},
        "nonce long unicode": {"nonce": "fixedNonce1好"},
        "nonce int": {"nonce": 123456789012},
        "no ciphertext": {"ciphertext": None},
        "ciphertext empty": {"ciphertext": ""},
        "ciphertext not base64": {"ciphertext": "a*b"},
        "ciphertext unpadded": {"ciphertext": "AAAA" * 8 + "AA"},
        "ciphertext non-ASCII": {"ciphertext": "好" * 8},
        "ciphertext short": {"ciphertext": "AAAAAAAAAAAAAAAAAAAAAA=="},
        "associated_data changed": {"associated_data": "refund"},
        "associated_data int": {"associated_data": 7},
        "no associated_data": {"associated_data": None},
        "wrong key": {"ciphertext": encrypt_v3_resource(b"{}", "k" * 32, nonce=NONCE)["ciphertext"]},
    }
    for name, changes in broken.items():
        add(f"resource refused: {name}", body(None, encrypted=good_encrypted(**changes)))
    add("resource empty associated_data", body(pay(), original_type=""))
    no_ad = encrypt_v3_resource(_plain(pay()), apiv3_key(), associated_data="", nonce=NONCE)
    del no_ad["associated_data"]
    add("resource without associated_data", body(None, encrypted=no_ad))
    for name, plaintext in {
        "not UTF-8": b"\xff",
        "not JSON": b"not json",
        "list": b"[1]",
        "duplicate key": b'{"out_trade_no":"a","out_trade_no":"b"}',
        "lone surrogate": b'{"out_trade_no":"\\udc00"}',
        "too deep": b'{"a":' + b"[" * 33 + b"]" * 33 + b"}",
        "Infinity": b'{"amount":{"total":Infinity}}',
    }.items():
        add(f"decrypted refused: {name}", body(plaintext))

    # Verification (headers, window, key, signature).
    good = body(pay())
    headers, _ = signed(good)
    header_changes: dict[str, dict[str, str | None]] = {
        "no timestamp": {"Wechatpay-Timestamp": None},
        "no nonce": {"Wechatpay-Nonce": ""},
        "no signature or serial": {"Wechatpay-Signature": None, "Wechatpay-Serial": None},
        "other signature type": {"Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"},
        "probe": {"Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]},
        "timestamp not digits": {"Wechatpay-Timestamp": "17e8"},
        "timestamp 13 digits": {"Wechatpay-Timestamp": "1" * 13},
        "nonce not printable": {"Wechatpay-Nonce": "a\tb"},
        "nonce not ASCII": {"Wechatpay-Nonce": "随机"},
        "unknown serial": {"Wechatpay-Serial": "ABCDEF"},
        "signature not base64": {"Wechatpay-Signature": "!!!!"},
        "signature unpadded": {"Wechatpay-Signature": headers["Wechatpay-Signature"].rstrip("=")},
        "signature short": {"Wechatpay-Signature": "AAAA"},
        "signature changed": {"Wechatpay-Signature": "A" + headers["Wechatpay-Signature"][1:]},
        "signature non-ASCII": {"Wechatpay-Signature": "签名"},
    }
    for name, change in header_changes.items():
        changed: dict[str, str | None] = {**headers, **change}
        add(f"verify refused: {name}", ({k: v for k, v in changed.items() if v is not None}, good))
    add(
        "verify serial lower case",
        ({**headers, "Wechatpay-Serial": headers["Wechatpay-Serial"].lower()}, good),
    )
    add("verify refused: too old", signed(good, timestamp=NOW - 301))
    add("verify refused: in the future", signed(good, timestamp=NOW + 301))
    add("verify at the edge of the window", signed(good, timestamp=NOW - 300))
    add(
        "verify refused: body changed",
        (headers, good.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCESS" ')),
    )
    add("verify refused: other key's serial", ({**headers, "Wechatpay-Serial": public_key().key_id}, good))
    return table


def _names() -> dict[str, str]:
    """Throwaway key ids (new each session) -> stable names, for the frozen outcomes."""
    return {certificate().key_id: "<certificate>", public_key().key_id: "<public key>"}


def _stable(text: str) -> str:
    for key_id, name in _names().items():
        text = text.replace(key_id, name)
    return text


def _fields(model: Any) -> dict[str, str]:
    return {name: _stable(repr(getattr(model, name))) for name in type(model).model_fields}


def outcome(acct: Account[WeChatPayV3Settings], notify: Notify) -> Any:
    """What `parse` hands over for one notification, as stable text: every field's repr, or the
    refusal's class, message, event_id and raw."""
    headers, raw = notify
    request = InboundRequest("POST", "notify", lower(headers), body=raw)
    try:
        parsed = acct.provider.parse(request, acct)
    except NotificationError as exc:
        refusal: dict[str, Any] = {"refused": type(exc).__name__, "message": _stable(exc.message),
                                   "account": exc.account}  # fmt: skip
        if isinstance(exc, InvalidContent):
            refusal |= {"event_id": exc.event_id, "raw": repr(exc.raw)}
        return refusal
    results = parsed if isinstance(parsed, list) else [parsed]
    return [{"type": type(r).__name__, **_fields(r)} for r in results]


def outcomes() -> dict[str, Any]:
    table = accounts()
    return {name: outcome(table[acct], notify) for name, (acct, notify) in cases().items()}


@pytest.fixture(scope="module")
def frozen() -> dict[str, Any]:
    expected: dict[str, Any] = json.loads(OUTCOMES.read_text(encoding="utf-8"))
    return expected


def test_the_frozen_outcomes_are_the_cases(frozen: dict[str, Any]) -> None:
    assert sorted(frozen) == sorted(cases())


@pytest.mark.parametrize("name", sorted(cases()))
def test_each_outcome_is_the_frozen_one(name: str, frozen: dict[str, Any]) -> None:
    acct, notify = cases()[name]
    assert outcome(accounts()[acct], notify) == frozen[name]


def test_the_cases_cover_every_outcome(frozen: dict[str, Any]) -> None:
    """The table is broad: results of each kind and refusals of each class are in it."""
    kinds = {r["kind"] for o in frozen.values() if isinstance(o, list) for r in o if "kind" in r}
    refusals = {o["refused"] for o in frozen.values() if isinstance(o, dict)}
    types = {r["type"] for o in frozen.values() if isinstance(o, list) for r in o}
    assert kinds == {"<Kind.PAYMENT: 'payment'>", "<Kind.REFUND: 'refund'>", "<Kind.TRANSFER: 'transfer'>"}
    assert refusals == {"InvalidContent", "MalformedNotification", "VerificationError"}
    assert types == {"PaymentResult", "UnhandledEvent"}


if __name__ == "__main__":
    text = json.dumps(outcomes(), ensure_ascii=False, indent=1, sort_keys=True)
    OUTCOMES.write_text(text + "\n", encoding="utf-8")


@pytest.mark.parametrize("absent", [(), ("summary",), ("id", "create_time", "event_type", "resource_type")])
def test_outer_fields_are_the_envelope_fields_in_their_order(absent: tuple[str, ...]) -> None:
    fields = {"resource": {}, "summary": "s", "event_type": "e", "extra": 1, "resource_type": "r",
              "create_time": "c", "id": "i"}  # fmt: skip
    for name in absent:
        del fields[name]
    expected = [(name, fields[name]) for name in ENVELOPE_FIELDS if name in fields]
    assert list(Envelope("i", "e", {}, fields).outer_fields().items()) == expected
