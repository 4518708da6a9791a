"""The exported names are the public API: changing them is a deliberate, visible act.

As httpx's tests/test_exported_members.py: what the package really exports is read from the module
itself (`vars`), not from a second list kept by hand, and must equal `__all__` (kept in ruff's
order, RUF022: constants, classes, then functions).
"""

import types

import paynotify


def test_all_lists_exactly_what_the_package_exports() -> None:
    exported = {
        name
        for name, value in vars(paynotify).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert exported == set(paynotify.__all__)
    assert len(paynotify.__all__) == len(set(paynotify.__all__))


def test_every_exported_name_is_defined_in_paynotify() -> None:
    for name in paynotify.__all__:
        value = getattr(paynotify, name)
        module = getattr(value, "__module__", "paynotify")
        assert module is None or module.startswith(("paynotify", "typing", "collections", "datetime")), name


def test_the_names_design_md_promises_are_exported() -> None:
    promised = {"Notifier", "PaymentResult", "Provider", "Store", "registry", "Options", "EventState"}
    assert promised <= set(paynotify.__all__)


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
