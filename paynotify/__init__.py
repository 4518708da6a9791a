"""paynotify: verified payment notifications, one route, one typed result, delivered once.

from paynotify import Notifier

notifier = Notifier("sqlite:///events.db")
notifier.add_account("shop", "alipay", app_id="2021...", alipay_public_key=ALIPAY_KEY)

@notifier.subscribe(kind="payment", status="succeeded")
async def ship(result):
    await orders.mark_paid(result.order_id, result.amount)

app = notifier.asgi()        # POST /shop/notify, GET /shop/return
"""

from paynotify._api import ApiRequest, ApiResponse, ProviderApi, QueryAnswer, Send, Upkeep
from paynotify._bills import Bill, BillLine, Download
from paynotify._encoding import canonical_b64decode, percent_decode
from paynotify._errors import (
    BillFormatError,
    CheckFailed,
    ConfigurationError,
    DeliveryFailed,
    InFlight,
    InvalidContent,
    MalformedNotification,
    NotANotification,
    NotificationError,
    PayloadTooLarge,
    PaynotifyError,
    ProviderApiError,
    ProviderNotFound,
    ProviderUnavailable,
    StoreError,
    UnknownAccount,
    UnknownChannel,
    UnstorableContent,
    VerificationError,
)
from paynotify._http import InboundRequest, Reply
from paynotify._notifier import DEFAULT_STORE_URL, Notifier
from paynotify._observe import Observer, Outcome
from paynotify._options import DEFAULT_BODY_LIMIT, Delivery, Options
from paynotify._provider import (
    Account,
    AccountSettings,
    DemoAccount,
    DemoRequest,
    LocalEmulator,
    Provider,
    SampleNotification,
    StarterAccount,
)
from paynotify._refusals import RecentRefusals, RefusedRequest
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
from paynotify._stores.base import (
    REPLAYABLE,
    RETAINED,
    RETRYABLE,
    Claim,
    ClaimState,
    DeliveryStore,
    EventLog,
    EventQuery,
    EventState,
    Lease,
    QueueStore,
    Store,
    StoredEvent,
)
from paynotify._stores.expectations import Expectation, ExpectationState, ExpectationStore
from paynotify._stores.history import Attempt, AttemptOutcome, AuditEntry, EventHistory
from paynotify._stores.memory import MemoryStore
from paynotify._stores.reconciliations import ReconciliationStore, StoredReport
from paynotify._stores.sqlite import SQLiteStore
from paynotify._stores.urls import open_store, store_schemes
from paynotify._subscribers import CheckHook, Refused, RejectedHook, ReturnHandler, UnhandledHook

__version__ = "0.1.0"

__all__ = [
    "BEIJING",
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_STORE_URL",
    "ENTRY_POINT_GROUP",
    "REPLAYABLE",
    "RETAINED",
    "RETRYABLE",
    "Account",
    "AccountSettings",
    "ApiRequest",
    "ApiResponse",
    "Attempt",
    "AttemptOutcome",
    "AuditEntry",
    "Bill",
    "BillFormatError",
    "BillLine",
    "CheckFailed",
    "CheckHook",
    "Claim",
    "ClaimState",
    "ConfigurationError",
    "Delivery",
    "DeliveryFailed",
    "DeliveryStore",
    "DemoAccount",
    "DemoRequest",
    "Download",
    "EventHistory",
    "EventLog",
    "EventQuery",
    "EventState",
    "Expectation",
    "ExpectationState",
    "ExpectationStore",
    "InFlight",
    "InboundRequest",
    "InvalidContent",
    "Kind",
    "Lease",
    "LocalEmulator",
    "MalformedNotification",
    "MemoryStore",
    "NotANotification",
    "NotificationError",
    "Notifier",
    "Observer",
    "Options",
    "Outcome",
    "PayloadTooLarge",
    "PaymentResult",
    "PaynotifyError",
    "Provider",
    "ProviderApi",
    "ProviderApiError",
    "ProviderNotFound",
    "ProviderUnavailable",
    "QueryAnswer",
    "QueueStore",
    "RecentRefusals",
    "ReconciliationStore",
    "Refused",
    "RefusedRequest",
    "Registry",
    "RejectedHook",
    "Reply",
    "ReturnHandler",
    "SQLiteStore",
    "SampleNotification",
    "Send",
    "Source",
    "StarterAccount",
    "Status",
    "Store",
    "StoreError",
    "StoredEvent",
    "StoredReport",
    "UnhandledEvent",
    "UnhandledHook",
    "UnknownAccount",
    "UnknownChannel",
    "UnstorableContent",
    "Upkeep",
    "VerificationError",
    "beijing_time",
    "canonical_b64decode",
    "make_event_id",
    "open_store",
    "percent_decode",
    "registry",
    "store_schemes",
]
