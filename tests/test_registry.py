"""Provider discovery: the entry-point group, and register() at run time."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import ClassVar

import httpx
import pytest
from paynotify_examplepay import ExamplePayProvider

from paynotify import (
    ENTRY_POINT_GROUP,
    Account,
    AccountSettings,
    ConfigurationError,
    InboundRequest,
    Kind,
    NotificationError,
    Notifier,
    PaymentResult,
    Provider,
    ProviderNotFound,
    Registry,
    Reply,
    Status,
    VerificationError,
    _registry,
    make_event_id,
)


class TokenSettings(AccountSettings):
    token: str


class TokenProvider(Provider[TokenSettings]):
    """A provider defined by an application at run time: a shared token in a header, plain-text body."""

    name = "tokenpay"
    settings_model = TokenSettings
    channels: ClassVar[frozenset[str]] = frozenset({"notify"})

    def parse(self, request: InboundRequest, account: Account[TokenSettings]) -> PaymentResult:
        import hmac

        if not hmac.compare_digest(request.headers.get("x-token", ""), account.settings.token):
            raise VerificationError("bad token")
        order_id = request.body.decode()
        return PaymentResult(
            provider=self.name,
            account=account.name,
            kind=Kind.PAYMENT,
            status=Status.SUCCEEDED,
            provider_status="PAID",
            order_id=order_id,
            event_id=make_event_id(account.name, Kind.PAYMENT, order_id, None, "PAID"),
        )

    def ack(self) -> Reply:
        return Reply.text("thanks")

    def nack(self, error: NotificationError) -> Reply:
        return Reply.text("again", 503)


def test_entry_point_plugin_is_found() -> None:
    registry = Registry()
    assert isinstance(registry.get("examplepay"), ExamplePayProvider)
    assert "examplepay" in registry.names()


def test_miss_names_what_is_registered() -> None:
    registry = Registry(group=None)
    registry.register(TokenProvider)
    with pytest.raises(ProviderNotFound, match=r"no provider named 'x' .*registered: tokenpay"):
        registry.get("x")


def test_register_refuses_non_providers_and_name_clashes() -> None:
    registry = Registry(group=None)
    with pytest.raises(ConfigurationError):
        registry.register(object)  # type: ignore[arg-type]

    class Impostor(TokenProvider):
        pass

    registry.register(TokenProvider)
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(Impostor)
    assert isinstance(registry.register(Impostor, replace=True), Impostor)


async def test_runtime_provider_serves_through_the_same_route() -> None:
    registry = Registry()
    registry.register(TokenProvider)
    notifier = Notifier("memory://", registry=registry)
    notifier.add_account("legacy", "tokenpay", token="t0ken")
    notifier.add_account("shop", "examplepay", app_id="a", secret="s")
    seen: list[PaymentResult] = []
    notifier.subscribe(seen.append)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=notifier.asgi()), base_url="http://t"
    ) as c:
        ok = await c.post("/legacy/notify", content=b"order-9", headers={"x-token": "t0ken"})
        bad = await c.post("/legacy/notify", content=b"order-9", headers={"x-token": "guess"})
    assert (ok.status_code, ok.content) == (200, b"thanks")
    assert (bad.status_code, bad.content) == (503, b"again")
    assert [r.order_id for r in seen] == ["order-9"]


def _plugins(monkeypatch: pytest.MonkeyPatch, *specs: tuple[str, str]) -> None:
    """Make the entry-point group hold exactly these (name, "module:attr") plugins, in order."""
    found = [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in specs]
    monkeypatch.setattr(_registry, "entry_points", lambda group: found)


def test_a_plugin_that_fails_to_load_does_not_hide_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(
        monkeypatch,
        ("broken", "paynotify_no_such_module:Provider"),
        ("examplepay", "paynotify_examplepay:ExamplePayProvider"),
    )
    registry = Registry()
    assert isinstance(registry.get("examplepay"), ExamplePayProvider)
    assert registry.names() == ["examplepay"]
    with pytest.raises(ProviderNotFound, match=r"plugin 'broken' failed to load: .*paynotify_no_such_module"):
        registry.get("broken")
    with pytest.raises(ProviderNotFound, match=r"registered: examplepay; failed to load: broken"):
        registry.get("other")


def test_a_misnamed_plugin_is_refused_before_it_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, ("alipay", "paynotify_examplepay:ExamplePayProvider"))
    registry = Registry()
    assert registry.names() == []  # it did not take the name "examplepay" on the way
    assert "loads a provider named 'examplepay'" in registry.failures["alipay"]
    with pytest.raises(ProviderNotFound, match="must match"):
        registry.get("alipay")


def test_an_explicit_register_wins_over_a_plugin_of_the_same_name(monkeypatch: pytest.MonkeyPatch) -> None:
    class LocalExamplePay(TokenProvider):
        name = "examplepay"

    _plugins(monkeypatch, ("examplepay", "paynotify_examplepay:ExamplePayProvider"))
    registry = Registry()
    registry.register(LocalExamplePay)
    assert isinstance(registry.get("examplepay"), LocalExamplePay)
    assert registry.names() == ["examplepay"]
    assert registry.failures == {}  # the plugin was passed over, not refused as a clash
