"""Provider discovery: the entry-point group, and register() at run time."""

from __future__ import annotations

from typing import ClassVar

import httpx
import pytest
from paynotify_examplepay import ExamplePayProvider

from paynotify import (
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
