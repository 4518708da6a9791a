"""The contract every provider plugin implements, first-party or third-party.

A provider is pure: bytes in, a `PaymentResult` or an exception out, plus its own reply bytes. It
knows nothing of Starlette, stores or subscribers.

    class MyProvider(Provider[MySettings]):
        name = "myprovider"
        settings_model = MySettings
        channels = frozenset({"notify"})

        def parse(self, request, account):  # verify first, on request.body, then normalize
            ...
        def ack(self): return Reply.text("OK")
        def nack(self, error): return Reply.text("FAIL", 400)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from paynotify._api import ProviderApi
from paynotify._errors import ConfigurationError, NotificationError
from paynotify._http import InboundRequest, Reply
from paynotify._result import Kind, PaymentResult, UnhandledEvent

if TYPE_CHECKING:
    from paynotify._resend import ResendSchedule

__all__ = [
    "Account",
    "AccountSettings",
    "DemoAccount",
    "DemoRequest",
    "LocalEmulator",
    "Provider",
    "SampleNotification",
    "StarterAccount",
]


class AccountSettings(BaseModel):
    """Base of every provider's account settings model.

    Subclasses add their own fields and validators; keys should be parsed once here (for example
    into a private attribute) so `parse` does no per-request key loading.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    return_url: str | None = None
    """Where the sync return redirects the buyer; `{order_id}` is replaced by the order id."""

    def _loaded(self, name: str) -> Any:
        """A private attribute set at validation (loaded keys), read straight from pydantic's storage.

        Plain `self._x` goes through pydantic's `__getattr__` fallback, ~2 us a read; keys are read
        on every notification.
        """
        private = self.__pydantic_private__
        if private is None:  # pragma: no cover - only a model without private attributes
            raise AttributeError(name)
        return private[name]

    def expected_app_id(self) -> str | None:
        """The app id every verified notification of this account must carry, if any."""
        return None

    def expected_merchant_id(self) -> str | None:
        """The merchant (seller) id every verified notification must carry, if configured."""
        return None


SettingsT = TypeVar("SettingsT", bound=AccountSettings)


@dataclass(frozen=True, slots=True)
class Account(Generic[SettingsT]):
    """One configured merchant account: its name in the URL, its provider and its settings."""

    name: str
    provider: Provider[SettingsT]
    settings: SettingsT
    expected_ids: tuple[tuple[str, str], ...] = field(init=False, repr=False)
    """(PaymentResult field, value) of the ids every verified notification must carry: read once, as
    settings never change (an update makes a new Account)."""

    def __post_init__(self) -> None:
        expected = (
            ("app_id", self.settings.expected_app_id()),
            ("merchant_id", self.settings.expected_merchant_id()),
        )
        object.__setattr__(self, "expected_ids", tuple((k, v) for k, v in expected if v is not None))


@dataclass(frozen=True, slots=True)
class DemoRequest:
    """One HTTP request `paynotify demo` sends, made by a provider's testing helpers."""

    label: str
    channel: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: bytes = b""
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """A throwaway account (fresh keys) and real signed requests for it, for `paynotify demo`.

    `requests` are genuine; `forged` is one that must be refused. `api`, when the provider must
    be asked about a request (a WeChat Pay v2 refund is confirmed through refundquery), is its
    emulator (an ASGI app) holding those orders, answering at the host of the settings' `base_url`.
    """

    settings: Mapping[str, Any]
    requests: Sequence[DemoRequest]
    forged: DemoRequest | None = None
    api: Any = None


@dataclass(frozen=True, slots=True)
class StarterAccount:
    """A throwaway account for `paynotify init`: its settings as written to the TOML file and the
    files they name (path relative to the service's directory -> content).

    Secrets go in `files`, named by `<field>_file` settings, never inline. Files under
    `keys/provider-side/` are the provider's half of a key pair (what it would sign with): written
    so tests can send the service signed notifications, never read by paynotify.
    """

    account: str
    settings: Mapping[str, str | Sequence[str]]
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LocalEmulator:
    """The provider played locally for one account, for `paynotify emulate`
    (docs/develop-without-the-provider.md).

    `app` is an ASGI app, the provider's emulator from its `testing` module, answering the account's
    API requests (its queries) signed with the provider's side of the throwaway keys; `paynotify
    emulate` serves it under the path of `base_url` (the account's), the app seeing the rest of the
    path. `pay(order_id, amount, at)` records at the emulator that the buyer paid `amount` (major
    units) for the order at `at` (aware, whole seconds; UnionPay's query names it), so a query finds
    it, and returns the notification the provider sends about it: what `emulate` POSTs to the
    account's notify URL, or drops. `refund(order_id, refund_id, amount, at)`, when offered, does
    the same for a refund of a paid order (KeyError for an order the emulator does not hold).
    `resend` (`paynotify.testing.ResendSchedule`) is when the provider sends a notification again
    that was not acknowledged (None: `emulate` sends it once).
    """

    app: Any
    base_url: str
    pay: Callable[[str, Decimal, datetime], DemoRequest]
    refund: Callable[[str, str, Decimal, datetime], DemoRequest] | None = None
    resend: ResendSchedule | None = None


@dataclass(frozen=True, slots=True)
class SampleNotification:
    """What `paynotify send` asks a provider to sign: one payment, or one refund, of an order."""

    kind: Kind
    order_id: str
    amount: Decimal
    """In major units (yuan): the payment's total, or the refund's amount."""
    refund_id: str | None = None
    """The merchant's refund request id (a refund only; the provider makes one up without it)."""

    @staticmethod
    def key_file(directory: Path, relative: str) -> bytes:
        """The test key file `relative` under `directory` (as `starter()` named it), or a
        `ConfigurationError` saying which file is missing."""
        path = directory / relative
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the test key {str(path)!r} ({exc.strerror}): paynotify send signs with the "
                "provider-side test keys `paynotify init` writes, which an account with real keys has not"
            ) from None


class Provider(ABC, Generic[SettingsT]):
    """A payment provider plugin. One instance serves every account of that provider."""

    name: ClassVar[str]
    settings_model: ClassVar[type[AccountSettings]]
    channels: ClassVar[frozenset[str]] = frozenset({"notify"})

    @abstractmethod
    def parse(
        self, request: InboundRequest, account: Account[SettingsT]
    ) -> PaymentResult | Sequence[PaymentResult] | UnhandledEvent:
        """Verify `request` on its raw bytes, then return the normalized result.

        A notification that reports several transitions at once (a WeChat Pay combined order: one
        payment per sub-order) returns them all, each with its own event id. A verified
        notification of a type that is not a payment, refund or transfer comes back as an
        `UnhandledEvent`: never on the `return` channel. Raises `MalformedNotification` (or
        `InvalidContent`, for verified fields out of shape) or `VerificationError`, never anything
        else on bad input.
        """

    @abstractmethod
    def ack(self) -> Reply:
        """The reply that tells the provider the notification was handled."""

    @abstractmethod
    def nack(self, error: NotificationError) -> Reply:
        """The reply that tells the provider to send the notification again later."""

    def reply_for(self, request: InboundRequest, reply: Reply) -> Reply:
        """The reply as sent to `request`: `reply` itself, unless the provider takes two formats on
        one channel and answers each in its own (a WeChat Pay v3 account taking v2 XML refunds)."""
        return reply

    def api(self) -> ProviderApi[SettingsT] | None:
        """The provider's outbound API client (queries), or None when it offers none."""
        return None

    @classmethod
    def demo(cls) -> DemoAccount | None:
        """Requests for `paynotify demo`; providers without testing helpers return None."""
        return None

    @classmethod
    def starter(cls, emulator: str | None = None) -> StarterAccount | None:
        """A throwaway account for `paynotify init`; providers without testing helpers return None.

        With `emulator` (the address `paynotify emulate` listens at, `http://127.0.0.1:8001`), the
        account also gets what a query needs (throwaway merchant keys) and a `base_url` under
        `{emulator}/{account}`, and the provider's side of those keys goes to `keys/provider-side/`
        for `emulator()` to sign with."""
        return None

    def emulator(self, account: Account[SettingsT], directory: Path) -> LocalEmulator | None:
        """The provider's emulator for `account` of a service `paynotify init` wrote into
        `directory`, signing with the provider's side of the keys `starter()` put in
        `keys/provider-side/`; None when the provider has none (or the account has no `base_url`
        or query keys to be emulated with)."""
        return None

    def sample_notification(
        self, account: Account[SettingsT], directory: Path, sample: SampleNotification
    ) -> DemoRequest | None:
        """`sample` as this provider would notify it to `account`, signed with the provider's side
        of the account's test keys: those `starter()` wrote under `directory` (the service's
        directory, `keys/provider-side/`) or, for a shared key, the account's own settings. For
        `paynotify send`; None when the provider has no testing helpers. Raises
        `ConfigurationError` when a key it needs is not there (an account with real keys)."""
        return None
