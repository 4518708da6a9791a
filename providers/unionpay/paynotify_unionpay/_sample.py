"""`paynotify send` for UnionPay: a back-end notification signed by the test chain `init` wrote."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from paynotify import Account, DemoRequest, Kind, SampleNotification
from paynotify_unionpay._settings import UnionPaySettings

__all__ = ["PROVIDER_KEY", "sample_notification"]

PROVIDER_KEY = "keys/provider-side/unionpay_signing_key.pem"
"""Where `starter()` puts the private key of the leaf certificate it trusts."""
CERTIFICATES = ("keys/unionpay_root.pem", "keys/unionpay_middle.pem", "keys/unionpay_verify.pem")

_FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def sample_notification(
    account: Account[UnionPaySettings], directory: Path, sample: SampleNotification
) -> DemoRequest:
    from paynotify_unionpay import testing

    key = load_pem_private_key(SampleNotification.key_file(directory, PROVIDER_KEY), password=None)
    assert isinstance(key, RSAPrivateKey), "a UnionPay key is RSA"
    root, middle, leaf = (
        x509.load_pem_x509_certificate(SampleNotification.key_file(directory, name)) for name in CERTIFICATES
    )
    # Only the leaf signs: the root's and the middle's keys are never needed for a notification.
    chain = testing.SigningChain(key, root, key, middle, key, leaf)
    mer_id = account.settings.mer_id
    fen = str(int(Decimal(sample.amount).scaleb(2)))
    if sample.kind is Kind.REFUND:
        body = testing.make_notify(
            chain, mer_id=mer_id, order_id=sample.refund_id or f"{sample.order_id}R1", txn_type="04",
            txn_amt=fen, orig_qry_id=testing.query_id(mer_id, sample.order_id),
        )  # fmt: skip
    else:
        body = testing.make_notify(chain, mer_id=mer_id, order_id=sample.order_id, txn_amt=fen)
    return DemoRequest(f"{sample.kind.value} {sample.order_id}", "notify", "POST", _FORM, body=body)
