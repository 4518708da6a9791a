"""paynotify: verified payment notifications, one route, one typed result, delivered once.

from paynotify import Notifier

notifier = Notifier("sqlite:///events.db")
notifier.add_account("shop", "alipay", app_id="2021...", alipay_public_key=ALIPAY_KEY)

@notifier.subscribe(kind="payment", status="succeeded")
async def ship(result):
    await orders.mark_paid(result.order_id, result.amount)

app = notifier.asgi()        # POST /shop/notify, GET /shop/return
"""

from paynotify._encoding import canonical_b64decode
from paynotify._errors import (
    CheckFailed,
    ConfigurationError,
    DeliveryFailed,
    InFlight,
    MalformedNotification,
    NotificationError,
    PayloadTooLarge,
    PaynotifyError,
    ProviderNotFound,
    StoreError,
    UnknownAccount,
    VerificationError,
)
from paynotify._http import InboundRequest, Reply
from paynotify._notifier import DEFAULT_BODY_LIMIT, DEFAULT_STORE_URL, Delivery, Notifier
from paynotify._provider import Account, AccountSettings, DemoAccount, DemoRequest, Provider
from paynotify._registry import ENTRY_POINT_GROUP, Registry, registry
from paynotify._result import (
    BEIJING,
    Kind,
    PaymentResult,
    Source,
    Status,
    UnhandledEvent,
    beijing_time,
    make_event_id,
)
from paynotify._store import (
    Claim,
    ClaimState,
    EventState,
    Lease,
    Store,
    StoredEvent,
    open_store,
    store_schemes,
)
from paynotify._store_memory import MemoryStore
from paynotify._store_sqlite import SQLiteStore

__version__ = "0.1.0"

__all__ = [
    "BEIJING",
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_STORE_URL",
    "ENTRY_POINT_GROUP",
    "Account",
    "AccountSettings",
    "CheckFailed",
    "Claim",
    "ClaimState",
    "ConfigurationError",
    "Delivery",
    "DeliveryFailed",
    "DemoAccount",
    "DemoRequest",
    "EventState",
    "InFlight",
    "InboundRequest",
    "Kind",
    "Lease",
    "MalformedNotification",
    "MemoryStore",
    "NotificationError",
    "Notifier",
    "PayloadTooLarge",
    "PaymentResult",
    "PaynotifyError",
    "Provider",
    "ProviderNotFound",
    "Registry",
    "Reply",
    "SQLiteStore",
    "Source",
    "Status",
    "Store",
    "StoreError",
    "StoredEvent",
    "UnhandledEvent",
    "UnknownAccount",
    "VerificationError",
    "beijing_time",
    "canonical_b64decode",
    "make_event_id",
    "open_store",
    "registry",
    "store_schemes",
]
