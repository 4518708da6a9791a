"""NATS JetStream: one message per event, de-duplicated by the server on `Nats-Msg-Id`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paynotify import PaymentResult
from paynotify.publishers._base import DEFAULT_TIMEOUT, Publisher, log, require
from paynotify.publishers._message import CONTENT_TYPE, Message, check_template, render_template

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

__all__ = ["DEFAULT_SUBJECT", "MIN_DUPLICATE_WINDOW", "NatsPublisher"]

DEFAULT_SUBJECT = "payments.{provider}.{account}.{kind}.{status}"
# Providers resend an unacknowledged notification for about a day (Alipay: 25 h); a crash between
# publishing and recording is only covered when the stream still remembers the message id by then.
MIN_DUPLICATE_WINDOW = 25 * 3600.0


@dataclass(frozen=True, slots=True)
class _Connection:
    client: Client
    js: JetStreamContext


class NatsPublisher(Publisher[_Connection]):
    """Publish each PaymentResult to NATS JetStream and wait for the stream's acknowledgement.

        notifier.subscribe(NatsPublisher("nats://127.0.0.1:4222", stream="PAYMENTS"), kind="payment")

    The header `Nats-Msg-Id` is the event id, so JetStream drops a second copy published within the
    stream's `duplicate_window` (set it to at least 25 hours; see docs/publishers.md); that copy's
    acknowledgement says `duplicate` and counts as success. `stream`, when given, is the stream the
    subject must land in (a publish captured by another stream fails) and is checked at connect.
    `connect_options` go to `nats.connect` (credentials, TLS).
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        subject: str = DEFAULT_SUBJECT,
        stream: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        require("nats", "nats")
        self.subject = check_template(subject, "subject")
        self.stream = stream
        self._servers = [servers] if isinstance(servers, str) else list(servers)
        self._options = dict(connect_options or {})
        super().__init__(target=subject if stream is None else f"{stream}:{subject}", timeout=timeout)

    async def _connect(self) -> _Connection:
        from nats.aio.client import Client
        from nats.errors import NoServersError

        client = Client()
        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            # Kept to name the cause: nats-py's own exception says only "no servers available".
            errors.append(exc)
            log.debug("%s: %s", self.name, exc)

        try:
            options: dict[str, Any] = {
                # Reconnection is the publisher's: a failed publish drops the client and the next
                # one connects afresh, instead of messages waiting in nats-py's reconnect buffer.
                "allow_reconnect": False,
                # Each server tried once, at once: a broker that is down fails the publish now,
                # not at its deadline (nats-py would otherwise retry every 2 s until then).
                "max_reconnect_attempts": 1,
                "reconnect_time_wait": 0,
                "connect_timeout": max(1, math.ceil(self.timeout)),
                "error_cb": on_error,
                "name": self.name,
            }
            await client.connect(servers=self._servers, **(options | self._options))
            js = client.jetstream(timeout=self.timeout)
            if self.stream is not None:
                await self._check_stream(js, self.stream)
        except BaseException as exc:
            # Also after a handshake that timed out, whose socket nats-py would leave open.
            await client.close()
            if isinstance(exc, NoServersError) and errors:
                raise ConnectionError(f"no NATS server answered: {errors[-1]}") from exc
            raise
        return _Connection(client, js)

    async def _check_stream(self, js: JetStreamContext, stream: str) -> None:
        info = await js.stream_info(stream)
        window = info.config.duplicate_window or 0
        if window < MIN_DUPLICATE_WINDOW:
            log.warning(
                "%s: stream %r de-duplicates for %g s only; a provider's retry after a failed record "
                "can publish an event twice (set duplicate_window to at least %g s)",
                self.name,
                stream,
                window,
                MIN_DUPLICATE_WINDOW,
            )

    async def _send(self, connection: _Connection, message: Message, result: PaymentResult) -> None:
        headers = {"Nats-Msg-Id": message.event_id, "Content-Type": CONTENT_TYPE, **message.headers}
        ack = await connection.js.publish(
            render_template(self.subject, result),
            message.body,
            timeout=self.timeout,
            stream=self.stream,
            headers=headers,
        )
        if ack.duplicate:
            log.info("%s: JetStream already had event %s (seq %d)", self.name, message.event_id, ack.seq)

    async def _close(self, connection: _Connection) -> None:
        await connection.client.close()
