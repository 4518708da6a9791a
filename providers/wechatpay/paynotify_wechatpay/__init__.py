"""WeChat Pay (微信支付) for paynotify: API v2 XML notifications (payments and encrypted refunds)
and API v3 JSON notifications (RSA-signed, AES-256-GCM resources: payments, refunds, other events).

notifier.add_account("shop", "wechatpay-v2", appid="wx...", mch_id="1900000001",
                     api_key=API_V2_KEY, sign_type="HMAC-SHA256")     # POST /shop/notify
notifier.add_account("shop3", "wechatpay-v3", mchid="1900000001", appid="wx...", apiv3_key=APIV3_KEY,
                     public_key_id="PUB_KEY_ID_...", public_key=PEM)  # POST /shop3/notify

Both answer queries (`Provider.api()`): v2 through /pay/orderquery and /pay/refundquery with the
API key, v3 with the merchant's API private key; both fetch the daily trade bill for the
reconciliation (`fetch_bill`: v2 /pay/downloadbill, v3 /v3/bill/tradebill with the file's SHA1
checked against the signed hash; one strict parser, `_bills`), v3 the fund-flow bill too.
`confirm_v2_refund` checks a v2 refund notification (not authenticated by WeChat Pay) against its
refund query.

`paynotify_wechatpay.testing` makes genuine notifications with throwaway keys, and emulates both
APIs (`WeChatPayV2Emulator`, `WeChatPayV3Emulator`).
"""

from paynotify_wechatpay._v2_api import WeChatPayV2Api
from paynotify_wechatpay._v2_provider import WeChatPayV2Provider
from paynotify_wechatpay._v2_refund_confirmation import RefundConfirmation, confirm_v2_refund
from paynotify_wechatpay._v2_settings import WeChatPayV2Settings
from paynotify_wechatpay._v2_signature import SignType
from paynotify_wechatpay._v3_provider import WeChatPayV3Provider
from paynotify_wechatpay._v3_settings import WeChatPayV3Settings

__version__ = "0.1.0"

__all__ = [
    "RefundConfirmation",
    "SignType",
    "WeChatPayV2Api",
    "WeChatPayV2Provider",
    "WeChatPayV2Settings",
    "WeChatPayV3Provider",
    "WeChatPayV3Settings",
    "confirm_v2_refund",
]
