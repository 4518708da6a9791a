"""`paynotify send` for WeChat Pay: v2 notifications signed (and a refund's req_info encrypted) with
the account's API key, v3 ones signed with the test key `init` wrote and encrypted with the APIv3 key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from paynotify import Account, ConfigurationError, DemoRequest, Kind, SampleNotification
from paynotify_wechatpay._v2_settings import WeChatPayV2Settings
from paynotify_wechatpay._v3_settings import WeChatPayV3Settings

__all__ = ["V3_PROVIDER_KEY", "v2_sample", "v3_sample"]

V3_PROVIDER_KEY = "keys/provider-side/wechatpay_v3_private_key.pem"
"""Where `starter()` puts the private half of the account's WeChat Pay public key."""


def _fen(amount: Decimal) -> int:
    """WeChat Pay counts in fen (0.01 yuan)."""
    return int(amount.scaleb(2))


def _refund_no(sample: SampleNotification) -> str:
    return sample.refund_id or f"{sample.order_id}-refund"


def v2_sample(account: Account[WeChatPayV2Settings], sample: SampleNotification) -> DemoRequest:
    from paynotify_wechatpay import testing

    settings = account.settings
    api_key = settings.api_key.get_secret_value()
    fen = _fen(sample.amount)
    if sample.kind is Kind.REFUND:
        if settings.confirm_refunds:
            raise ConfigurationError(
                f"account {account.name!r} confirms each refund with WeChat Pay's refundquery before "
                "delivering it (confirm_refunds), which knows no test refund: send a payment, or set "
                "confirm_refunds = false on a test account"
            )
        body = testing.make_v2_refund_notify(
            api_key, appid=settings.appid, mch_id=settings.mch_id, out_trade_no=sample.order_id,
            out_refund_no=_refund_no(sample), total_fee=fen, refund_fee=fen,
        )  # fmt: skip
    else:
        body = testing.make_v2_payment_notify(
            api_key, appid=settings.appid, mch_id=settings.mch_id, out_trade_no=sample.order_id,
            total_fee=fen, sign_type=settings.sign_type,
        )  # fmt: skip
    headers = {"content-type": "text/xml"}
    return DemoRequest(f"{sample.kind.value} {sample.order_id}", "notify", "POST", headers, body=body)


def v3_sample(
    account: Account[WeChatPayV3Settings], directory: Path, sample: SampleNotification
) -> DemoRequest:
    from paynotify_wechatpay import testing

    settings = account.settings
    if settings.public_key_id is None or settings.public_key is None or settings.mchid is None:
        raise ConfigurationError(
            f"account {account.name!r}: paynotify send signs with a WeChat Pay public key "
            "(public_key_id, public_key and mchid, as `paynotify init` writes them)"
        )
    private = load_pem_private_key(SampleNotification.key_file(directory, V3_PROVIDER_KEY), password=None)
    assert isinstance(private, RSAPrivateKey), "a WeChat Pay key is RSA"
    key = testing.V3SigningKey(settings.public_key_id, private, settings.public_key)
    apiv3_key = settings.apiv3_key.get_secret_value()
    fen = _fen(sample.amount)
    if sample.kind is Kind.REFUND:
        headers, body = testing.make_v3_refund_notify(
            key, apiv3_key, mchid=settings.mchid, out_trade_no=sample.order_id,
            out_refund_no=_refund_no(sample), total=fen, refund=fen,
        )  # fmt: skip
    else:
        headers, body = testing.make_v3_transaction_notify(
            key, apiv3_key, appid=settings.appid or testing.APPID, mchid=settings.mchid,
            out_trade_no=sample.order_id, total=fen,
        )  # fmt: skip
    headers = {**headers, "content-type": "application/json"}
    return DemoRequest(f"{sample.kind.value} {sample.order_id}", "notify", "POST", headers, body=body)
