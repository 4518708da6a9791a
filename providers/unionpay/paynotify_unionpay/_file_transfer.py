"""Asking UnionPay for a day's bill: 文件传输类交易, `POST https://filedownload.95516.com/`.

Request (a form, UTF-8, signed like a query): version 5.1.0, encoding UTF-8, signMethod 01,
txnType 76, txnSubType 01 (对账文件下载), bizType 000000, accessType 0, merId, settleDate (MMDD,
the settlement day), txnTime (now, Beijing), fileType 00, certId.

Answer: a form signed by UnionPay like a query answer, verified the same way before a field is read;
respCode 00 carries `fileContent`, the base64 of a zlib-deflated ZIP (`fileName`, e.g.
`<merId>_<yyyymmdd>.zip`), which is inflated into a temporary file (at most `MAX_BILL` bytes) and
read by `UnionPayBill`. Any other respCode is a ProviderApiError naming it (UnionPay has no bill for
that settleDate, or refused the request); an unsigned refusal is never believed.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
import zlib
from datetime import date, datetime
from typing import TYPE_CHECKING, BinaryIO

from paynotify import (
    BEIJING,
    Account,
    ProviderApiError,
    Send,
)
from paynotify_unionpay._answer import SHOWN, signed_request, verified_answer
from paynotify_unionpay._bills import UnionPayBill
from paynotify_unionpay._settings import UnionPaySettings

if TYPE_CHECKING:
    from paynotify_unionpay._provider import UnionPayProvider

__all__ = ["MAX_BILL", "bill_fields", "fetch_bill"]

MAX_BILL = 1 << 30
"""The most bytes an inflated bill ZIP may have (a deflate bomb stops there)."""
_CHUNK = 1 << 20


def bill_fields(mer_id: str, day: date, txn_time: datetime, cert_id: str) -> dict[str, str]:
    """The fields of a file transfer request for `day`'s bill, before its signature."""
    return {
        "version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "txnType": "76", "txnSubType": "01",
        "bizType": "000000", "accessType": "0", "merId": mer_id, "settleDate": f"{day:%m%d}",
        "txnTime": f"{txn_time.astimezone(BEIJING):%Y%m%d%H%M%S}", "fileType": "00", "certId": cert_id,
    }  # fmt: skip


async def fetch_bill(
    provider: UnionPayProvider, send: Send, account: Account[UnionPaySettings], day: date, now: datetime
) -> UnionPayBill:
    """`day`'s bill of `account`, verified; raises as a query does."""
    settings, name = account.settings, account.name
    signing = settings.signing
    if signing is None:
        raise ProviderApiError(
            f"account {name!r} cannot fetch UnionPay bills: set signing_pfx and signing_pfx_password",
            account=name,
        )
    fields = bill_fields(settings.mer_id, day, now, signing.cert_id)
    request = signed_request(settings.file_transfer_url, fields, signing)
    answer, _ = verified_answer(provider, settings, await send(request), name, "the bill request")
    code = answer.get("respCode", "")
    if code != "00":
        raise ProviderApiError(
            f"account {name!r}: UnionPay offers no bill for settleDate {day:%m%d} ({day}): respCode "
            f"{code[:SHOWN]!r} {answer.get('respMsg', '')[:SHOWN]}".rstrip(),
            account=name,
            code=code[:SHOWN],
        )
    for key in ("merId", "settleDate", "fileType"):
        # The signature covers the answer, not the question: another day's file is not this one.
        if answer.get(key) != fields[key]:
            raise ProviderApiError(
                f"account {name!r}: UnionPay's bill answer has {key} {answer.get(key, '')[:SHOWN]!r}, "
                f"not {fields[key]!r}",
                account=name,
            )
    return UnionPayBill(day, _inflated(answer.get("fileContent", ""), name), settings.mer_id)


def _inflated(content: str, name: str) -> BinaryIO:
    try:
        packed = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderApiError(
            f"account {name!r}: UnionPay's fileContent is not base64", account=name
        ) from None
    inflater = zlib.decompressobj()
    file = tempfile.TemporaryFile()  # noqa: SIM115 - the Bill owns it, and closes it
    try:
        written = 0
        for start in range(0, len(packed), _CHUNK):
            piece = inflater.decompress(packed[start : start + _CHUNK], MAX_BILL - written + 1)
            while piece:
                written += len(piece)
                if written > MAX_BILL:
                    raise ProviderApiError(
                        f"account {name!r}: UnionPay's bill inflates past {MAX_BILL} bytes", account=name
                    )
                file.write(piece)
                piece = inflater.decompress(inflater.unconsumed_tail, MAX_BILL - written + 1)
        file.write(inflater.flush())
        if not inflater.eof:
            raise ProviderApiError(f"account {name!r}: UnionPay's fileContent is truncated", account=name)
    except zlib.error:
        file.close()
        raise ProviderApiError(
            f"account {name!r}: UnionPay's fileContent is not deflated", account=name
        ) from None
    except ProviderApiError:
        file.close()
        raise
    file.seek(0)
    return file
