"""Where provider plugins are found: the `paynotify.providers` entry-point group, plus `register()`.

from paynotify import registry
registry.register(MyProvider)          # at run time, no packaging needed
registry.get("alipay")                 # -> the AlipayProvider instance
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import EntryPoint, entry_points

from paynotify._errors import ConfigurationError, ProviderNotFound
from paynotify._provider import Provider

__all__ = ["ENTRY_POINT_GROUP", "Registry", "registry"]

ENTRY_POINT_GROUP = "paynotify.providers"

log = logging.getLogger("paynotify")


class Registry:
    """Provider instances by name. Entry points are loaded lazily, on the first miss."""

    def __init__(self, *, group: str | None = ENTRY_POINT_GROUP) -> None:
        self._group = group
        self._providers: dict[str, Provider] = {}  # type: ignore[type-arg]
        self._entry_points_loaded = group is None
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def register(self, provider: type[Provider] | Provider, *, replace: bool = False) -> Provider:  # type: ignore[type-arg]
        """Add a provider class (or instance); returns the instance that will serve requests."""
        instance = provider() if isinstance(provider, type) else provider
        if not isinstance(instance, Provider):
            raise ConfigurationError(f"{provider!r} is not a paynotify Provider subclass")
        name = getattr(instance, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"provider {type(instance).__qualname__} has no `name`")
        with self._lock:
            existing = self._providers.get(name)
            if existing is not None and not replace and type(existing) is not type(instance):
                raise ConfigurationError(
                    f"provider name {name!r} is already registered by {type(existing).__qualname__}; "
                    "pass replace=True to override it"
                )
            self._providers[name] = instance
        return instance

    def get(self, name: str) -> Provider:  # type: ignore[type-arg]
        """The provider registered as `name`; the error lists what is registered and what failed."""
        provider = self._providers.get(name)
        if provider is None:
            self._load_entry_points()
            provider = self._providers.get(name)
        if provider is None:
            known = ", ".join(sorted(self._providers)) or "none"
            failed = self._failures.get(name)
            if failed is not None:
                raise ProviderNotFound(f"provider plugin {name!r} failed to load: {failed}")
            broken = f"; failed to load: {', '.join(sorted(self._failures))}" if self._failures else ""
            raise ProviderNotFound(
                f"no provider named {name!r} is registered (registered: {known}{broken}); install its "
                f"distribution (e.g. paynotify-{name}) or call paynotify.registry.register()"
            )
        return provider

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._providers)

    @property
    def failures(self) -> dict[str, str]:
        """Entry points that failed to load, by name, with why (each is reported once, in the log)."""
        self._load_entry_points()
        return dict(self._failures)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or self._group is None:
            return
        with self._lock:
            if self._entry_points_loaded:
                return
            self._entry_points_loaded = True
            found = list(entry_points(group=self._group))
        for ep in found:
            if ep.name in self._providers:
                continue  # an explicit register() wins over a plugin
            # One plugin at a time: a broken one is reported for itself, the rest keep working.
            try:
                self._load_one(ep)
            except Exception as exc:
                self._failures[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
                log.error("provider plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)

    def _load_one(self, ep: EntryPoint) -> None:
        cls = ep.load()
        instance = cls() if isinstance(cls, type) else cls
        name = getattr(instance, "name", None)
        if name != ep.name:
            # Checked before registering: a misnamed plugin must not take another provider's name.
            raise ConfigurationError(
                f"entry point {ep.name!r} loads a provider named {name!r}; they must match"
            )
        self.register(instance)


registry = Registry()
