"""RabbitMQ: persistent messages with publisher confirms; `message_id` is the event id, which the
consumer de-duplicates on (RabbitMQ itself has no de-duplication)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paynotify import PaymentResult
from paynotify.publishers._base import DEFAULT_TIMEOUT, Publisher, require
from paynotify.publishers._message import CONTENT_TYPE, Message, check_template, render_template

if TYPE_CHECKING:
    from aio_pika.abc import AbstractConnection, AbstractExchange

__all__ = ["DEFAULT_EXCHANGE", "DEFAULT_ROUTING_KEY", "MESSAGE_TYPE", "RabbitMQPublisher"]

DEFAULT_EXCHANGE = "payments"
DEFAULT_ROUTING_KEY = "payments.{provider}.{account}.{kind}.{status}"
MESSAGE_TYPE = "paynotify.PaymentResult"


@dataclass(frozen=True, slots=True)
class _Connection:
    connection: AbstractConnection
    exchange: AbstractExchange


class RabbitMQPublisher(Publisher[_Connection]):
    """Publish each PaymentResult to a RabbitMQ exchange and wait for the broker's confirm.

        notifier.subscribe(RabbitMQPublisher("amqp://user:pass@mq.internal/", exchange="payments"))

    The exchange must exist (declare it with your queues; `exchange=""` is the default exchange,
    where the routing key is a queue name). Messages are persistent and mandatory: one no queue
    takes is returned by the broker and the publish raises, rather than vanishing. A resend after a
    failed record reaches consumers twice with the same `message_id`: consumers de-duplicate on it
    (docs/publishers.md shows how).
    """

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        exchange: str = DEFAULT_EXCHANGE,
        routing_key: str = DEFAULT_ROUTING_KEY,
        mandatory: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        require("aio_pika", "rabbitmq")
        self.exchange = exchange
        self.routing_key = check_template(routing_key, "routing key")
        self.mandatory = mandatory
        self._url = url
        super().__init__(target=f"{exchange}:{routing_key}", timeout=timeout)

    async def _connect(self) -> _Connection:
        import aio_pika

        # Not connect_robust: its background reconnection does not replay a failed publish, and a
        # publish must fail within its deadline rather than wait on it; the next one reconnects.
        # The caller's deadline (open or publish) bounds the connect: no second timer of aio-pika's.
        connection = await aio_pika.connect(self._url, client_properties={"connection_name": self.name})
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            if self.exchange:
                exchange = await channel.get_exchange(self.exchange, ensure=True)
            else:
                exchange = channel.default_exchange
        except BaseException:
            await connection.close()
            raise
        return _Connection(connection, exchange)

    async def _send(self, connection: _Connection, message: Message, result: PaymentResult) -> None:
        import aio_pika
        import aiormq

        confirmation = await connection.exchange.publish(
            aio_pika.Message(
                message.body,
                headers=dict(message.headers),
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.event_id,
                type=MESSAGE_TYPE,
            ),
            routing_key=render_template(self.routing_key, result),
            mandatory=self.mandatory,
            timeout=self.timeout,
        )
        # With confirms on, a nack or a return raises; anything but an ack is not a confirmation.
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise RuntimeError(f"the broker answered {confirmation!r}, not an ack")

    async def _close(self, connection: _Connection) -> None:
        await connection.connection.close()
