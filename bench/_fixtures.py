"""Genuinely signed notifications for every case, made by the providers' own `testing` helpers with
throwaway keys, and the account settings that trust those keys. Every notification is distinct (its
own out_trade_no), so none is a duplicate of another."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from paynotify_alipay import testing as alipay_testing
from paynotify_wechatpay import testing as wx_testing

from bench._common import Request

ALIPAY_APP_ID = "2021000000000042"
FORM: list[tuple[bytes, bytes]] = [(b"content-type", b"application/x-www-form-urlencoded; charset=utf-8")]
XML: list[tuple[bytes, bytes]] = [(b"content-type", b"text/xml")]


@dataclass(frozen=True)
class AlipayKeys:
    private_pem: str
    public_pem: str

    @classmethod
    def generate(cls) -> AlipayKeys:
        key = alipay_testing.generate_key()
        return cls(alipay_testing.private_key_pem(key), alipay_testing.public_key_pem(key))

    def private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def settings(self) -> dict[str, Any]:
        return {"app_id": ALIPAY_APP_ID, "alipay_public_key": self.public_pem}


def _alipay_batch(job: tuple[str, str, int, int]) -> list[bytes]:
    private_pem, prefix, first, count = job
    key = AlipayKeys(private_pem, "").private_key()
    return [
        alipay_testing.make_notify(key, app_id=ALIPAY_APP_ID, out_trade_no=f"{prefix}-{i}")
        for i in range(first, first + count)
    ]


def alipay_bodies(keys: AlipayKeys, n: int, prefix: str, processes: int = 1) -> list[bytes]:
    """`n` signed async notifications (TRADE_SUCCESS), out_trade_no `{prefix}-{i}`.

    RSA signing costs ~1 ms each here; `processes` > 1 signs in a pool.
    """
    if processes <= 1 or n < 2000:
        return _alipay_batch((keys.private_pem, prefix, 0, n))
    step = -(-n // (processes * 4))
    jobs = [(keys.private_pem, prefix, first, min(step, n - first)) for first in range(0, n, step)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return [body for part in pool.map(_alipay_batch, jobs) for body in part]


def alipay_requests(keys: AlipayKeys, n: int, prefix: str) -> list[Request]:
    return [(FORM, body) for body in alipay_bodies(keys, n, prefix)]


@dataclass(frozen=True)
class WeChatV2Keys:
    api_key: str
    sign_type: str

    @classmethod
    def generate(cls, sign_type: str) -> WeChatV2Keys:
        return cls(wx_testing.generate_api_key(), sign_type)

    def settings(self) -> dict[str, Any]:
        return {
            "appid": wx_testing.APPID,
            "mch_id": wx_testing.MCH_ID,
            "api_key": self.api_key,
            "sign_type": self.sign_type,
        }


def wechat_v2_bodies(keys: WeChatV2Keys, n: int, prefix: str, first: int = 0) -> list[bytes]:
    return [
        wx_testing.make_v2_payment_notify(
            keys.api_key,
            appid=wx_testing.APPID,
            mch_id=wx_testing.MCH_ID,
            out_trade_no=f"{prefix}-{i}",
            sign_type=keys.sign_type,  # type: ignore[arg-type]
        )
        for i in range(first, first + n)
    ]


def wechat_v2_requests(keys: WeChatV2Keys, n: int, prefix: str) -> list[Request]:
    return [(XML, body) for body in wechat_v2_bodies(keys, n, prefix)]


@dataclass(frozen=True)
class WeChatV3Keys:
    signer: wx_testing.V3SigningKey
    apiv3_key: str

    @classmethod
    def generate(cls) -> WeChatV3Keys:
        return cls(wx_testing.generate_v3_platform_certificate(), wx_testing.generate_apiv3_key())

    def settings(self) -> dict[str, Any]:
        return {
            "mchid": wx_testing.MCH_ID,
            "appid": wx_testing.APPID,
            "apiv3_key": self.apiv3_key,
            **self.signer.account_settings(),
        }


def wechat_v3_notes(keys: WeChatV3Keys, n: int, prefix: str) -> list[tuple[dict[str, str], bytes]]:
    """(headers as WeChat Pay sends them, body): timestamp now, so inside the 300 s replay window."""
    return [
        wx_testing.make_v3_transaction_notify(
            keys.signer,
            keys.apiv3_key,
            appid=wx_testing.APPID,
            mchid=wx_testing.MCH_ID,
            out_trade_no=f"{prefix}-{i}",
        )
        for i in range(n)
    ]


def as_request(headers: dict[str, str], body: bytes) -> Request:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ], body


def lower_headers(request: Request) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in request[0]}


def distinct(requests: Sequence[Request]) -> bool:
    return len({body for _, body in requests}) == len(requests)
