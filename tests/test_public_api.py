"""The exported names are the public API: changing them is a deliberate, visible act.

`__all__` is kept in ruff's order (RUF022: constants, classes, then functions).
"""

import paynotify


def test_exported_names() -> None:
    assert paynotify.__all__ == [
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
    for name in paynotify.__all__:
        assert hasattr(paynotify, name), name


def test_payment_result_field_names_are_stable() -> None:
    required = {
        "provider",
        "account",
        "kind",
        "status",
        "provider_status",
        "order_id",
        "transaction_id",
        "refund_id",
        "provider_refund_id",
        "amount",
        "currency",
        "refund_amount",
        "paid_at",
        "payer_id",
        "app_id",
        "merchant_id",
        "source",
        "event_id",
        "raw",
    }
    assert required <= set(paynotify.PaymentResult.model_fields)
