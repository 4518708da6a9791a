"""UnionPay (银联 全渠道 / ACP) for paynotify: back-end notifications and front returns, signMethod 01.

notifier.add_account("shop", "unionpay", mer_id="777290058167151")   # POST /shop/notify (backUrl)
notifier.add_account("shop", "unionpay", mer_id="777290058167151",   # POST /shop/return (frontUrl)
                     environment="test")                              # UnionPay's test environment

5.1.0 messages are verified with the certificate they carry, trusted through UnionPay's CFCA chain
(shipped with this package); 5.0.0 ones with the configured `verify_certs`, by certId.

`UnionPayProvider().api()` queries transactions and fetches a settlement day's bill (the file
transfer transaction, txnType 76: the ZM file read strictly); it needs the merchant's `signing_pfx`.

`paynotify_unionpay.testing` makes genuinely signed notifications with a throwaway chain.
"""

from paynotify_unionpay._certs import TEST_CN_ORG, UNIONPAY_CN_ORG
from paynotify_unionpay._mapping import RETURN_STATUS, TXN_TYPES, status_of
from paynotify_unionpay._provider import UnionPayProvider
from paynotify_unionpay._settings import UnionPaySettings

__version__ = "0.1.0"

__all__ = [
    "RETURN_STATUS",
    "TEST_CN_ORG",
    "TXN_TYPES",
    "UNIONPAY_CN_ORG",
    "UnionPayProvider",
    "UnionPaySettings",
    "status_of",
]
