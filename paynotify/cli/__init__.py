"""The ``paynotify`` command: ``serve``, ``worker``, ``events``, ``query``, ``webhooks``, ``init``, ``demo``.

This layer sits above the core: it builds a :class:`~paynotify.Notifier` from a configuration and runs
it; nothing in the core imports it.
"""

from paynotify.cli._main import main

__all__ = ["main"]
