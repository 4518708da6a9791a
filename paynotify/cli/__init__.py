"""The ``paynotify`` command: ``serve``, ``worker``, ``events``, ``query``, ``expect``, ``reconcile``,
``webhooks``, ``send``, ``emulate``, ``init``, ``demo`` and more (``paynotify --help``).

This layer sits above the core: it builds a :class:`~paynotify.Notifier` from a configuration and runs
it; nothing in the core imports it.
"""

from paynotify.cli._main import main

__all__ = ["main"]
