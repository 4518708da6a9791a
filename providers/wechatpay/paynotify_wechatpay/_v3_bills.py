"""WeChat Pay API v3 bills: what the signed answer must say, and the downloaded file's SHA1 check.

`GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL` (and `/v3/bill/fundflowbill`) answers,
signed like every v3 answer, `{"hash_type": "SHA1", "hash_value": "<40 hex>", "download_url":
"https://api.mch.weixin.qq.com/v3/billdownload/file?token=..."}`; the URL is good for about 30 s.
The download is a GET signed like any request (Authorization over the URL's path and query) whose
body carries no signature: only its SHA1, compared with the signed `hash_value` (of the inflated
text when tar_type=GZIP), ties it to WeChat Pay. So the hash is checked, over the whole file in
chunks, before a line is read; a mismatch is a `VerificationError`.

A day without a bill answers 400 NO_STATEMENT_EXIST; a bill still being made, STATEMENT_CREATING
(a day's bill is ready from about 10:00 Beijing time the next day).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from paynotify import ProviderApiError, VerificationError
from paynotify_wechatpay._bills import file_sha1

__all__ = ["BILL_ERRORS", "FUND_FLOW_BILL_PATH", "TRADE_BILL_PATH", "bill_answer", "check_sha1",
           "download_target"]  # fmt: skip

TRADE_BILL_PATH = "/v3/bill/tradebill"
FUND_FLOW_BILL_PATH = "/v3/bill/fundflowbill"
BILL_ERRORS = {
    "NO_STATEMENT_EXIST": "no bill for that day: no trade or refund on it, or not a day WeChat Pay keeps",
    "STATEMENT_CREATING": "the bill is being made: it is ready from about 10:00 Beijing time the next day",
}
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")


def bill_answer(fields: Mapping[str, Any], account: str) -> tuple[str, str]:
    """(hash_value, download_url) of a verified bill answer; ProviderApiError if out of shape."""
    hash_type, hash_value, url = (fields.get(name) for name in ("hash_type", "hash_value", "download_url"))
    if hash_type != "SHA1" or not isinstance(hash_value, str) or not _SHA1.fullmatch(hash_value):
        raise ProviderApiError(
            f"account {account!r}: WeChat Pay's bill answer has hash_type {str(hash_type)[:16]!r} and no "
            "40-hex hash_value: the file could not be checked",
            account=account,
        )
    if (
        not isinstance(url, str)
        or urlsplit(url).scheme not in ("https", "http")
        or not urlsplit(url).hostname
    ):
        raise ProviderApiError(f"account {account!r}: WeChat Pay's bill answer has no download_url",
                               account=account)  # fmt: skip
    return hash_value.lower(), url


def download_target(url: str) -> tuple[str, str]:
    """(scheme://host[:port], path?query) of a download URL: what the request signs."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    return base, parts.path + (f"?{parts.query}" if parts.query else "")


def check_sha1(file: BinaryIO, hash_value: str, account: str) -> None:
    """The downloaded file is the one WeChat Pay signed the hash of, or VerificationError."""
    actual = file_sha1(file)
    if not hmac.compare_digest(actual, hash_value):
        raise VerificationError(
            f"the downloaded bill's SHA1 {actual[:12]}... is not the signed hash_value {hash_value[:12]}...: "
            "not the file WeChat Pay answered for; nothing of it is read",
            account=account,
        )
    file.seek(0)
