"""`paynotify send` for Alipay: a notify_url notification signed with the test key `init` wrote."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from paynotify import BEIJING, Account, DemoRequest, Kind, SampleNotification
from paynotify_alipay._settings import AlipaySettings

__all__ = ["PROVIDER_KEY", "sample_notification"]

PROVIDER_KEY = "keys/provider-side/alipay_private_key.pem"
"""Where `starter()` puts the private half of the account's Alipay public key."""

_FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def sample_notification(
    account: Account[AlipaySettings], directory: Path, sample: SampleNotification
) -> DemoRequest:
    from paynotify_alipay import testing

    key = load_pem_private_key(SampleNotification.key_file(directory, PROVIDER_KEY), password=None)
    assert isinstance(key, RSAPrivateKey), "an Alipay key is RSA"
    settings = account.settings
    amount = f"{sample.amount:.2f}"
    refund = sample.kind is Kind.REFUND
    now = datetime.now(BEIJING)
    body = testing.make_notify(
        key,
        app_id=settings.app_id,
        out_trade_no=sample.order_id,
        total_amount=amount,
        sign_type=settings.sign_type,
        seller_id=settings.seller_id or testing.SELLER_ID,
        # A payment has none of these (None leaves a field out).
        refund_fee=amount if refund else None,
        gmt_refund=f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d}" if refund else None,
        out_biz_no=(sample.refund_id or f"{sample.order_id}-refund") if refund else None,
    )
    return DemoRequest(f"{sample.kind.value} {sample.order_id}", "notify", "POST", _FORM, body=body)
