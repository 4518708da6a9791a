"""WeChat Pay v2 XML notifications that arrive at a v3 account's URL.

A refund started in the merchant platform (商户平台) rather than through the v3 API is notified in
the v2 format: XML, `req_info` encrypted with the API v2 key, no v3 signature headers. So is a
payment of an order placed through the v2 API while a merchant migrates. A v3 account configured
with `apiv2_key` (its v2 key, `apiv2_sign_type` for v2 payments) takes them on the same URL: they
go through the v2 provider's own checks (`_v2_provider`: the sign of a payment, the appid / mch_id
and strict decryption of a refund, the shapes of every field) with the same merchant's v2
settings, and come out as the v3 account's results. Without `apiv2_key` such a body is refused
(401: WeChat Pay resends it until the account is configured).

The results are the account's: provider `wechatpay-v3`. Their event_ids are the ones a v3
notification of the same transition has where the two formats agree (a direct merchant's payment
SUCCESS, a refund SUCCESS): account + kind + transaction_id + out_refund_no + status; a service
provider's add the sub-merchant (sub_mch_id, as v3 adds sub_mchid), and its results' merchant_id
is the sub-merchant, as the v3 account checks it.

The reply is the v2 one (`<xml><return_code>SUCCESS...`, HTTP 200), which WeChat Pay's v2
notifier reads; a failure is the v2 FAIL with the same reason (`reply_for`).
"""

from __future__ import annotations

import json

from paynotify import (
    Account,
    InboundRequest,
    NotificationError,
    PaymentResult,
    Reply,
    UnhandledEvent,
    VerificationError,
    make_event_id,
)
from paynotify_wechatpay._v2_provider import WeChatPayV2Provider
from paynotify_wechatpay._v3_settings import WeChatPayV3Settings

__all__ = ["is_v2_body", "parse_v2", "v2_reply"]

_V2 = WeChatPayV2Provider()


def is_v2_body(body: bytes) -> bool:
    """An XML body: a v3 notification is JSON, which never starts with `<`."""
    first = body[:1]
    return first == b"<" or (first.isspace() and body.lstrip()[:1] == b"<")


def parse_v2(
    request: InboundRequest, account: Account[WeChatPayV3Settings], *, provider: str
) -> PaymentResult | UnhandledEvent:
    settings = account.settings
    v2 = settings.v2_settings
    if v2 is None:
        raise VerificationError(
            "a WeChat Pay v2 XML notification (a refund started in the merchant platform?) and this v3 "
            "account has no apiv2_key to verify it; set apiv2_key (and apiv2_sign_type) to accept them"
        )
    parsed = _V2.parse(request, Account(account.name, _V2, v2))
    if isinstance(parsed, UnhandledEvent):
        return parsed.model_copy(update={"provider": provider})
    update: dict[str, object] = {"provider": provider}
    if settings.service_provider:
        sub_mchid = parsed.raw.get("sub_mch_id") or None
        trade = parsed.transaction_id or parsed.order_id
        update["merchant_id"] = sub_mchid
        update["event_id"] = make_event_id(
            account.name, parsed.kind, trade, parsed.refund_id, parsed.provider_status, sub_mchid or ""
        )
    return parsed.model_copy(update=update)


def v2_reply(reply: Reply) -> Reply:
    """The v2 form of a v3 reply: SUCCESS for a 2xx, else FAIL with the v3 reply's message."""
    if 200 <= reply.status < 300:
        return _V2.ack()
    try:
        message = str(json.loads(reply.body)["message"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {reply.status}"
    return _V2.nack(NotificationError(message))
