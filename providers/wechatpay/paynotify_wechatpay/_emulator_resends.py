"""When WeChat Pay sends a notification again (PROTOCOLS.md, "Reply"), for the v2 and v3 emulators."""

from __future__ import annotations

from paynotify import MalformedNotification
from paynotify.testing import ResendSchedule
from paynotify_wechatpay._xml import parse_flat_xml

__all__ = ["V2_RESEND_SCHEDULE", "V3_RESEND_SCHEDULE"]

_DELAYS = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
"""15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h (24h4m), WeChat Pay's current docs."""


def _v2_acknowledged(status: int, body: bytes) -> bool:
    """HTTP 200 and `<xml><return_code>SUCCESS</return_code>...</xml>`."""
    if status != 200:
        return False
    try:
        return parse_flat_xml(body).get("return_code") == "SUCCESS"
    except (MalformedNotification, ValueError):
        return False


V2_RESEND_SCHEDULE = ResendSchedule("wechatpay-v2", delays=_DELAYS, acknowledged=_v2_acknowledged)
"""WeChat Pay v2 resends until return_code SUCCESS with HTTP 200."""

V3_RESEND_SCHEDULE = ResendSchedule(
    "wechatpay-v3", delays=_DELAYS, acknowledged=lambda status, body: status in (200, 204)
)
"""WeChat Pay v3 resends until HTTP 200 or 204 (the status decides, the body is not read)."""
