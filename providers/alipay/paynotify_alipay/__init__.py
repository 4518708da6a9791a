"""Alipay (支付宝) for paynotify: async notifications and sync returns, verified with the V1 rule.

notifier.add_account("shop", "alipay", app_id="2021...", alipay_public_key=ALIPAY_PUBLIC_KEY,
                     seller_id="2088...")     # POST /shop/notify, GET /shop/return
notifier.add_account("shop", "alipay", app_id="2021...",      # certificate mode (公钥证书模式)
                     alipay_public_cert="certs/alipayCertPublicKey_RSA2.crt")

`cert_sn()` and `root_cert_sn()` compute the SNs Alipay names certificates by (app_cert_sn,
alipay_cert_sn, alipay_root_cert_sn).

`AlipayProvider().api()` asks Alipay about an order or a refund (`notifier.query`), and fetches
a day's trade bill (`fetch_bill`, the GBK ZIP read strictly); it needs the account's
`app_private_key`.

`paynotify_alipay.testing` makes genuinely signed notifications with throwaway keys, and
`AlipayEmulator` is a local Alipay gateway.
"""

from paynotify_alipay._api import AlipayApi
from paynotify_alipay._certs import cert_sn, root_cert_sn
from paynotify_alipay._provider import RETURN_STATUS, AlipayProvider, passback_params
from paynotify_alipay._settings import PRODUCTION_GATEWAY, SANDBOX_GATEWAY, AlipaySettings
from paynotify_alipay._signature import AlipayPublicKey, SignType

__version__ = "0.1.0"

__all__ = [
    "PRODUCTION_GATEWAY",
    "RETURN_STATUS",
    "SANDBOX_GATEWAY",
    "AlipayApi",
    "AlipayProvider",
    "AlipayPublicKey",
    "AlipaySettings",
    "SignType",
    "cert_sn",
    "passback_params",
    "root_cert_sn",
]
