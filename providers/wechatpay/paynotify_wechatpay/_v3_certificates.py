"""WeChat Pay platform certificates (平台证书) downloaded from `GET /v3/certificates`, adopted live.

    {"data": [{"serial_no": "5157F09EFDC096DE15EBE81A47057A72", "effective_time": "...",
               "expire_time": "...", "encrypt_certificate": {"algorithm": "AEAD_AES_256_GCM",
               "nonce": "...", "associated_data": "certificate", "ciphertext": "..."}}]}

Each certificate is encrypted with the APIv3 key like a notification's resource. An account in
certificate mode that has its merchant key (the request must be signed) downloads them; an account
that trusts only WeChat Pay's public key gets none and needs none.

How the download's own signature is checked. The answer is signed like any other, by a platform
certificate named in `Wechatpay-Serial`:
- when that serial is already trusted (configured, or adopted earlier), the answer is verified with
  it before anything of the body is read, exactly as a query answer;
- when it is not (the first download of an account configured with no certificate, or WeChat Pay
  signing with a certificate it just issued), the body is read, every certificate in it decrypted,
  and the answer must verify with the certificate of that serial among them. That is what
  wechatpay-go's and wechatpayv3's downloaders do. What it trusts: the APIv3 key (the AES-GCM tag
  proves each certificate was encrypted by someone holding it: WeChat Pay or the merchant) and
  the TLS connection; the signature then only shows the answer is consistent with those
  certificates. Certificates are never adopted from an answer that fails either check.

`PlatformCertificates` is the account's holder: configured keys plus the downloaded ones, as one
`Keyring` the verifier reads (swapped whole on adoption, so a notification sees the old set or the
new one, never half). With a listener set (`CertificateRefresher.watch`), a lookup of an unknown
serial tells the refresher, which downloads again: single-flight, at most once a minute.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paynotify import (
    Account,
    ApiResponse,
    MalformedNotification,
    PaynotifyError,
    ProviderApiError,
    ProviderUnavailable,
    Send,
    VerificationError,
)
from paynotify_wechatpay._json import loads
from paynotify_wechatpay._v3_crypto import decrypt_resource
from paynotify_wechatpay._v3_keys import Keyring, V3Key, load_platform_certificates
from paynotify_wechatpay._v3_signature import SignedHeaders, verify

if TYPE_CHECKING:
    from paynotify_wechatpay._v3_settings import WeChatPayV3Settings

__all__ = [
    "CERTIFICATES_PATH",
    "REFRESH_INTERVAL",
    "CertificateRefresher",
    "PlatformCertificates",
    "read_certificates",
]

logger = logging.getLogger("paynotify.wechatpay")

CERTIFICATES_PATH = "/v3/certificates"
REFRESH_INTERVAL = 60.0
"""Seconds between two downloads at least: an unknown serial (a forged one too) costs at most one."""
_MAX_CERTIFICATES = 16


class _WatchedKeyring(Keyring):
    """A Keyring that tells its holder when a lookup finds nothing (an unknown Wechatpay-Serial)."""

    __slots__ = ("_holder",)

    def __init__(self, keys: Iterable[V3Key], holder: PlatformCertificates) -> None:
        super().__init__(keys)
        self._holder = holder

    def find(self, serial: str) -> V3Key | None:
        key = super().find(serial)
        if key is None:
            self._holder.unknown_serial(serial)
        return key


class PlatformCertificates:
    """One account's trusted WeChat Pay keys: the configured ones and the downloaded certificates."""

    __slots__ = ("_configured", "_downloaded", "_keyring", "_listener", "_watched")

    def __init__(self, configured: Iterable[V3Key], *, watched: bool = False) -> None:
        self._configured = tuple(configured)
        self._downloaded: tuple[V3Key, ...] = ()
        self._watched = watched
        self._listener: Callable[[str], None] | None = None
        self._keyring = self._make()

    def _make(self) -> Keyring:
        keys = (*self._configured, *self._downloaded)
        return _WatchedKeyring(keys, self) if self._watched else Keyring(keys)

    @property
    def keyring(self) -> Keyring:
        """Every trusted key; the same object until certificates are adopted."""
        return self._keyring

    @property
    def downloaded(self) -> tuple[V3Key, ...]:
        """The certificates adopted from the last download."""
        return self._downloaded

    def lookup(self, serial: str) -> V3Key | None:
        """The trusted key of `serial`, without telling the listener."""
        return Keyring((*self._configured, *self._downloaded)).find(serial)

    def adopt(self, keys: Iterable[V3Key]) -> tuple[str, ...]:
        """Trust `keys` (the current download) instead of the previous download; configured keys
        stay. A certificate whose serial a configured one has, with another key, is left out.
        Returns the serials that were not trusted before."""
        before = set(self._keyring.key_ids)
        configured = {key.key_id.upper(): key for key in self._configured}
        kept = []
        for key in keys:
            known = configured.get(key.key_id.upper())
            if known is None:
                kept.append(key)
            elif known.key.public_numbers() != key.key.public_numbers():
                logger.warning(
                    "downloaded platform certificate %s differs from the configured one: not adopted",
                    key.key_id,
                )
        self._downloaded = tuple(kept)
        self._keyring = self._make()
        return tuple(key_id for key_id in self._keyring.key_ids if key_id not in before)

    def set_listener(self, listener: Callable[[str], None] | None) -> None:
        """Call `listener(serial)` whenever a lookup finds no key (only for a watched holder)."""
        self._listener = listener

    def unknown_serial(self, serial: str) -> None:
        listener = self._listener
        if listener is not None:
            listener(serial)


def _item_text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise ProviderApiError(f"/v3/certificates: an entry has no {name}")
    return value


def _decrypt(body: bytes, aead: AESGCM) -> list[V3Key]:
    """Every certificate in a /v3/certificates answer, decrypted and loaded; each entry's serial_no
    must be its certificate's serial."""
    try:
        document = loads(body.decode("utf-8"), "/v3/certificates answer")
    except (UnicodeDecodeError, MalformedNotification) as exc:
        raise ProviderApiError(f"/v3/certificates answer is not JSON: {exc}") from None
    items = document.get("data") if isinstance(document, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ProviderApiError("/v3/certificates answer has no data list")
    if len(items) > _MAX_CERTIFICATES:
        raise ProviderApiError(f"/v3/certificates answer lists {len(items)} certificates")
    keys = []
    for item in items:
        serial = _item_text(item, "serial_no")
        sealed = item.get("encrypt_certificate")
        if not isinstance(sealed, dict):
            raise ProviderApiError(
                f"/v3/certificates: certificate {serial[:40]!r} has no encrypt_certificate"
            )
        try:
            pem = decrypt_resource(sealed, aead).decode("ascii")
            loaded = load_platform_certificates(pem)
        except VerificationError:
            raise VerificationError(
                f"/v3/certificates: certificate {serial[:40]!r} does not decrypt with this account's "
                "apiv3_key (GCM tag mismatch): not adopted"
            ) from None
        except (MalformedNotification, UnicodeDecodeError, ValueError) as exc:
            raise ProviderApiError(
                f"/v3/certificates: certificate {serial[:40]!r} unreadable: {exc}"
            ) from None
        if len(loaded) != 1 or loaded[0].key_id.upper() != serial.upper():
            raise ProviderApiError(
                f"/v3/certificates: the certificate listed as {serial[:40]!r} has another serial"
            )
        keys.append(loaded[0])
    return keys


def read_certificates(
    response: ApiResponse, settings: WeChatPayV3Settings, *, now: float, account: str
) -> list[V3Key]:
    """The certificates of a /v3/certificates answer, verified as the module docstring says."""
    if response.status != 200:
        raise ProviderApiError(
            f"account {account!r}: /v3/certificates answered HTTP {response.status}", account=account
        )
    headers = SignedHeaders.from_headers(response.headers)
    known = settings.certificates.lookup(headers.serial)
    tolerance = settings.timestamp_tolerance
    if known is not None:
        verify(headers, response.body, Keyring((known,)), now=now, tolerance=tolerance)
        return _decrypt(response.body, settings.aead)
    # Not yet trusted: only the APIv3 key can vouch for these (see the module docstring).
    keys = _decrypt(response.body, settings.aead)
    verify(headers, response.body, Keyring(keys), now=now, tolerance=tolerance)
    return keys


Download = Callable[[Send, Account["WeChatPayV3Settings"]], Awaitable[list[V3Key]]]


class CertificateRefresher:
    """Keeps one account's downloaded platform certificates current.

    `refresh()` downloads and adopts them: concurrent calls share one download (single-flight), and
    a call within `interval` seconds of the last download does nothing. `watch()` makes the
    account's holder call `trigger()` on an unknown serial, which schedules `refresh()` on the loop
    (from any thread). `account` returns the account as it is now, so an `update_account` is
    followed (call `watch()` again after one: the new settings' holder gets the certificates
    downloaded last and is watched).
    """

    def __init__(
        self,
        download: Download,
        send: Send,
        account: Callable[[], Account[WeChatPayV3Settings]],
        *,
        interval: float = REFRESH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._download = download
        self._send = send
        self._account = account
        self.interval = interval
        self._clock = clock
        self._last: float | None = None
        self._running: asyncio.Future[bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled: set[concurrent.futures.Future[bool]] = set()
        self.downloads = 0
        """Downloads started (for tests and metrics)."""
        self.last_error: PaynotifyError | None = None
        self._keys: tuple[V3Key, ...] = ()

    def _due(self) -> bool:
        return self._running is None and (self._last is None or self._clock() - self._last >= self.interval)

    async def refresh(self) -> bool:
        """Download and adopt now, unless one runs (then its outcome) or one ran within `interval`."""
        if self._running is not None:
            return await asyncio.shield(self._running)
        if not self._due():
            return False
        self._last = self._clock()
        self.downloads += 1
        self._running = asyncio.ensure_future(self._run())
        try:
            return await asyncio.shield(self._running)
        finally:
            self._running = None

    async def _run(self) -> bool:
        account = self._account()
        try:
            keys = await self._download(self._send, account)
        except (ProviderApiError, VerificationError) as exc:
            self.last_error = exc
            level = logging.INFO if isinstance(exc, ProviderUnavailable) else logging.WARNING
            logger.log(level, "account %r: platform certificates not refreshed: %s", account.name, exc)
            return False
        except Exception:  # a refresh runs in the background: it logs, it never takes anything down
            logger.exception("account %r: platform certificates not refreshed", account.name)
            return False
        added = account.settings.certificates.adopt(keys)
        self._keys = tuple(keys)
        self.last_error = None
        logger.info(
            "account %r: platform certificates %s adopted%s", account.name,
            ", ".join(key.key_id for key in keys) or "(none listed)",
            f" (new: {', '.join(added)})" if added else "",
        )  # fmt: skip
        return True

    def watch(self) -> None:
        """Have the account's holder trigger a refresh on an unknown serial (call on the loop).

        After an `update_account` call it again: the new settings' holder is given the certificates
        downloaded last, and watched, without another download."""
        self._loop = asyncio.get_running_loop()
        holder = self._account().settings.certificates
        if self._keys:
            holder.adopt(self._keys)
        holder.set_listener(self.trigger)

    def trigger(self, serial: str) -> None:
        """An unknown serial was seen: schedule a refresh if one is due. Never raises; cheap."""
        loop = self._loop
        if loop is None or not self._due() or loop.is_closed():
            return
        logger.info("Wechatpay-Serial %r is not trusted yet: refreshing platform certificates", serial[:64])
        # Thread-safe, and the future exists at once (so `wait()` sees it, whichever thread parsed).
        future = asyncio.run_coroutine_threadsafe(self.refresh(), loop)
        self._scheduled.add(future)
        future.add_done_callback(self._scheduled.discard)

    async def wait(self) -> None:
        """Until the refreshes scheduled so far have finished."""
        while self._scheduled:
            await asyncio.gather(
                *(asyncio.wrap_future(f) for f in list(self._scheduled)), return_exceptions=True
            )

    async def aclose(self) -> None:
        """Stop watching and cancel scheduled refreshes."""
        self._account().settings.certificates.set_listener(None)
        self._loop = None
        scheduled = list(self._scheduled)
        for future in scheduled:
            future.cancel()
        await asyncio.gather(*(asyncio.wrap_future(f) for f in scheduled), return_exceptions=True)
