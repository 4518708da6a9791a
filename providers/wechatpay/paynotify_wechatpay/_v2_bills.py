"""WeChat Pay API v2 bills (下载对账单): `POST /pay/downloadbill`, and telling its error XML from a bill.

The request is XML signed like a query (appid, mch_id, nonce_str, sign_type MD5 or HMAC-SHA256,
bill_date YYYYMMDD, bill_type ALL). The answer is the bill itself, as text (`_bills`), or, when
there is none, an unsigned error XML:

    <xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[No Bill Exist]]></return_msg>
    <error_code><![CDATA[20002]]></error_code></xml>

Neither is signed: the bill is evidence only (the reconciliation queries, verified, what it names)
and the error XML is only ever an error, never a state.
"""

from __future__ import annotations

from datetime import date
from typing import BinaryIO

from paynotify import MalformedNotification, ProviderApiError
from paynotify_wechatpay._v2_mapping import shown
from paynotify_wechatpay._xml import parse_flat_xml

__all__ = ["DOWNLOAD_BILL_PATH", "NO_BILL", "refuse_error_answer"]

DOWNLOAD_BILL_PATH = "/pay/downloadbill"
NO_BILL = "No Bill Exist"
"""return_msg of "no bill for that day": no trade on it, or not published yet."""
_PEEK = 64
_MAX_ERROR = 64 * 1024


def refuse_error_answer(file: BinaryIO, account: str, day: date) -> None:
    """ProviderApiError when the downloaded answer is WeChat Pay's error XML; else `file` is left
    at its start, a bill to read."""
    file.seek(0)
    head = file.read(_PEEK).lstrip(b"\xef\xbb\xbf \t\r\n")
    file.seek(0)
    if not head.startswith(b"<xml"):
        return
    body = file.read(_MAX_ERROR)
    try:
        answer = parse_flat_xml(body, "xml", what="downloadbill answer")
    except MalformedNotification as exc:
        raise ProviderApiError(f"account {account!r}: {exc.message}", account=account) from None
    message = answer.get("return_msg", "")
    code = answer.get("error_code") or answer.get("err_code") or message or None
    if message == NO_BILL:
        raise ProviderApiError(
            f"account {account!r}: WeChat Pay has no bill of {day} ({NO_BILL}): no trade on that day, or "
            "not published yet (a day's bill is ready from about 10:00 Beijing time the next day)",
            account=account,
            code=code,
        )
    raise ProviderApiError(
        f"account {account!r}: WeChat Pay answered no bill of {day}: return_code "
        f"{shown(answer.get('return_code', ''))}, return_msg {shown(message)}",
        account=account,
        code=code,
    )
