"""The contract of a provider's daily bill (对账单): what the provider says it settled on one day.

A provider whose API offers bills implements `ProviderApi.can_fetch_bills` and `fetch_bill`. Like a
query, the client does no I/O of its own: the small signed answers (WeChat Pay v3's download URL and
hash, Alipay's short-lived URL) go through `send` and are verified like any answer; the bill's body
goes through `download`, which the core streams to a temporary file within its own deadline and
size cap. The provider then reads that file line by line (`Bill.lines`), so a bill of 10^6 lines
costs bounded memory, and checks what can be checked (WeChat Pay v3: the SHA1 of the signed answer;
UnionPay: the signed response that carries the file).

    class MyApi(ProviderApi[MySettings]):
        def can_fetch_bills(self, account):
            return account.settings.private_key is not None

        async def fetch_bill(self, send, download, account, day):
            answer = verify(await send(ApiRequest("GET", url_for(day), sign(...))))
            file = await download(ApiRequest("GET", answer["download_url"], sign(...)))
            return MyBill(day, file)          # its lines() parses `file`, strictly

A bill is evidence for a person and a list of orders to ask about, never proof on its own: some
bills are not signed at all (WeChat Pay v2's text, Alipay's ZIP). So the reconciliation only ever
*queries* a payment the bill names and delivers the verified answer; it never delivers a bill line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import BinaryIO

from paynotify._api import ApiRequest
from paynotify._result import Kind, Status

__all__ = ["Bill", "BillLine", "Download"]


Download = Callable[[ApiRequest], Awaitable[BinaryIO]]
"""Fetches a request's body into a temporary file (positioned at 0; the caller closes it) within the
core's download deadline and size cap; raises `ProviderUnavailable` when it cannot, `ProviderApiError`
for an error answer."""


@dataclass(frozen=True, slots=True)
class BillLine:
    """One payment or refund as the provider's bill states it.

    `amount` is in currency units (yuan, not fen): the payment's total for a payment line, the
    refund's amount for a refund line. `status` is the state the bill gives, mapped like a
    notification's (`provider_status` is the bill's own word for it). `line` is the 1-based line
    number in the provider's file, for the report and for errors.
    """

    line: int
    kind: Kind
    order_id: str
    transaction_id: str | None
    amount: Decimal
    status: Status = Status.SUCCEEDED
    provider_status: str = ""
    currency: str = "CNY"
    refund_id: str | None = None
    provider_refund_id: str | None = None
    at: datetime | None = None
    fee: Decimal | None = None


class Bill(ABC):
    """A downloaded bill of one account and day: its lines, read from a file on demand."""

    def __init__(self, day: date, file: BinaryIO | None = None) -> None:
        self.day = day
        self._file = file

    @abstractmethod
    def lines(self) -> Iterator[BillLine]:
        """The bill's payments and refunds in file order, parsed strictly: a line that is not in the
        provider's format, or a summary that does not add up, raises `BillFormatError` naming its
        line number. Synchronous, so the core may run it in a worker thread."""

    def close(self) -> None:
        """Let go of the downloaded file (the core calls it when the reconciliation is done)."""
        if self._file is not None:
            self._file.close()
            self._file = None
