"""Testing helpers a provider's emulator builds on: a notification pushed to a notify_url and resent on
the provider's schedule until acknowledged, on a virtual or a real clock, with faults
(docs/develop-without-the-provider.md, "Resends").

    courier = NotificationCourier(client, emulator.RESEND_SCHEDULE, clock=VirtualClock())
    sending = courier.send("/shop/notify", request)      # a DemoRequest the emulator made
    await courier.clock.advance(4 * 60)                  # the first resend is due
"""

from paynotify._resend import (
    SETTLE_BOUND,
    Acknowledged,
    Clock,
    NotificationCourier,
    RealClock,
    ReorderQueue,
    ResendSchedule,
    SendAttempt,
    Sending,
    VirtualClock,
    push_once,
)

__all__ = [
    "SETTLE_BOUND",
    "Acknowledged",
    "Clock",
    "NotificationCourier",
    "RealClock",
    "ReorderQueue",
    "ResendSchedule",
    "SendAttempt",
    "Sending",
    "VirtualClock",
    "push_once",
]
