"""Structured logs: one JSON object per line.

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.getLogger("paynotify").addHandler(handler)

Only the message and the fields named below leave the process; paynotify's messages never hold a
secret, a signature or key material, and no other attribute of a record is copied.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

__all__ = ["FIELDS", "JsonFormatter"]

FIELDS = ("event_id", "account", "provider", "outcome", "cause")
"""The attributes paynotify puts on its log records (`extra=`), copied when present."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
