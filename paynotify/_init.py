"""`paynotify init DIR`: a service that runs as written, with throwaway test keys.

It writes `paynotify.toml` (one account per installed first-party provider), the keys as files next
to it (secrets through `<field>_file`, never inline), `subs.py` with the subscriber the config names
(`subs:on_event`, imported from DIR), and a README. The provider's own side of each key pair (what
Alipay, WeChat Pay or UnionPay would sign with) goes to `keys/provider-side/`, so a test can send
the service genuinely signed notifications; paynotify never reads it.

The keys come from the providers' `testing` helpers. This is the one place the core names
first-party providers, and only as optional imports: an uninstalled one is skipped.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from paynotify._errors import ConfigurationError

__all__ = ["Starter", "init_project"]


@dataclass
class Starter:
    """One account: its TOML lines and the files they name (path relative to DIR -> content)."""

    account: str
    provider: str
    settings: list[str]
    files: dict[str, str] = field(default_factory=dict)


_SUBS = '''"""Subscribers of this service; paynotify.toml names them as "subs:on_event".

paynotify imports them with this directory on sys.path, wherever `paynotify serve` is started.
Make side effects idempotent on result.event_id: a subscriber runs until it succeeds once per event.
"""

import logging

from paynotify import PaymentResult

log = logging.getLogger("subs")


def on_event(result: PaymentResult) -> None:
    log.info(
        "%s %s/%s order %s amount %s (event %s)",
        result.account,
        result.kind.value,
        result.status.value,
        result.order_id,
        result.amount,
        result.event_id,
    )
'''

_README = """# A paynotify service

Run it: `paynotify serve --config paynotify.toml` (then `paynotify events list --config paynotify.toml`).

Every key here is a throwaway test key made by `paynotify init`: replace them with your accounts'
real ones (Alipay's public key, your WeChat Pay keys, UnionPay's certificates) before going live, and
delete `keys/provider-side/`, which holds the providers' side of the test keys for signing test
notifications (see docs/testing.md). Notification URLs: `http://HOST:PORT/{account}/notify`.
"""


def _alipay() -> Starter | None:
    if importlib.util.find_spec("paynotify_alipay") is None:
        return None
    from paynotify_alipay import testing

    key = testing.generate_key()
    return Starter(
        "shop-alipay",
        "alipay",
        ['app_id = "2021000000000000"', 'alipay_public_key_file = "keys/alipay_public_key.pem"'],
        {
            "keys/alipay_public_key.pem": testing.public_key_pem(key),
            "keys/provider-side/alipay_private_key.pem": testing.private_key_pem(key),
        },
    )


def _wechatpay() -> list[Starter]:
    if importlib.util.find_spec("paynotify_wechatpay") is None:
        return []
    from cryptography.hazmat.primitives import serialization
    from paynotify_wechatpay import testing

    v3 = testing.generate_v3_public_key()
    v3_private = v3.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return [
        Starter(
            "shop-wechat-v2",
            "wechatpay-v2",
            [
                f'appid = "{testing.APPID}"',
                f'mch_id = "{testing.MCH_ID}"',
                'sign_type = "HMAC-SHA256"',
                'api_key_file = "keys/wechatpay_v2_api_key"',
            ],
            {"keys/wechatpay_v2_api_key": testing.generate_api_key()},
        ),
        Starter(
            "shop-wechat-v3",
            "wechatpay-v3",
            [
                f'appid = "{testing.APPID}"',
                f'mchid = "{testing.MCH_ID}"',
                'apiv3_key_file = "keys/wechatpay_v3_apiv3_key"',
                f'public_key_id = "{v3.key_id}"',
                'public_key_file = "keys/wechatpay_v3_public_key.pem"',
            ],
            {
                "keys/wechatpay_v3_apiv3_key": testing.generate_apiv3_key(),
                "keys/wechatpay_v3_public_key.pem": v3.public_key_pem,
                "keys/provider-side/wechatpay_v3_private_key.pem": v3_private,
            },
        ),
    ]


def _unionpay() -> Starter | None:
    if importlib.util.find_spec("paynotify_unionpay") is None:
        return None
    from cryptography.hazmat.primitives import serialization
    from paynotify_unionpay import testing

    chain = testing.generate_chain()
    leaf_key = chain.leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return Starter(
        "shop-unionpay",
        "unionpay",
        [
            f'mer_id = "{testing.MER_ID}"',
            'root_cert_file = "keys/unionpay_root.pem"',
            'middle_cert_file = "keys/unionpay_middle.pem"',
            'verify_certs_file = ["keys/unionpay_verify.pem"]',
        ],
        {
            "keys/unionpay_root.pem": chain.root_pem,
            "keys/unionpay_middle.pem": chain.middle_pem,
            "keys/unionpay_verify.pem": chain.leaf_pem,
            "keys/provider-side/unionpay_signing_key.pem": leaf_key,
        },
    )


_STARTERS: list[Callable[[], Starter | list[Starter] | None]] = [_alipay, _wechatpay, _unionpay]


def init_project(directory: Path, *, force: bool = False) -> list[Starter]:
    """Write the service into `directory`; refuses to overwrite a paynotify.toml unless `force`."""
    config = directory / "paynotify.toml"
    if config.exists() and not force:
        raise ConfigurationError(f"{str(config)!r} exists; give --force to overwrite it")
    starters: list[Starter] = []
    for make in _STARTERS:
        made = make()
        starters += made if isinstance(made, list) else [made] if made is not None else []
    if not starters:
        raise ConfigurationError(
            "no first-party provider is installed (pip install paynotify-alipay paynotify-wechatpay)"
        )
    lines = [
        "# Made by `paynotify init`: throwaway test keys, see README.md. Secrets are files (`<field>_file`),",
        "# never inline. Subscribers are imported from this file's directory.",
        'store = "sqlite:///paynotify-events.db"   # relative to this file',
        'subscribers = ["subs:on_event"]',
    ]
    for starter in starters:
        lines += ["", f"[accounts.{starter.account}]", f'provider = "{starter.provider}"', *starter.settings]
    directory.mkdir(parents=True, exist_ok=True)
    for starter in starters:
        for name, content in starter.files.items():
            _write_secret(directory / name, content)
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "subs.py").write_text(_SUBS, encoding="utf-8")
    (directory / "README.md").write_text(_README, encoding="utf-8")
    return starters


def _write_secret(path: Path, content: str) -> None:
    # Owner-only from the start: keys are never readable by others, not even for a moment.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content if content.endswith("\n") else content + "\n")
