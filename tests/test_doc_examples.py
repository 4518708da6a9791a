"""Every python block of README.md and docs/ runs: each is executed, top-level await allowed, with
only the names the pages take as given (a key, an `orders` service, a `notifier`) defined first.

The framework pages (django, flask, fastapi) show examples/ files verbatim; tests/test_examples.py
runs those.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import re
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from paynotify_alipay import testing as alipay_testing
from paynotify_wechatpay import testing as wx_testing
from test_examples import FRAMEWORK_DOCS

from paynotify import Kind, Notifier, PaymentResult

ROOT = Path(__file__).parent.parent
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
BROKER_CONSUMERS = ("docs/publishers.md", "asyncio.run(main())")
_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", flags=re.DOTALL | re.MULTILINE)


def blocks() -> list[Any]:
    found = []
    for page in PAGES:
        if page in FRAMEWORK_DOCS:
            continue
        for i, match in enumerate(_BLOCK.finditer((ROOT / page).read_text())):
            code = textwrap.dedent(match.group(2))
            if page in BROKER_CONSUMERS[0] and BROKER_CONSUMERS[1] in code:
                continue  # a consumer, run against its broker by tests/test_publishers_docs.py
            found.append(pytest.param(page, code, id=f"{page}#{i + 1}"))
    return found


class Orders:
    """The merchant's order service the examples call."""

    async def mark_paid(self, order_id: str, amount: Decimal | None, **kwargs: object) -> None:
        pass

    async def get(self, order_id: str) -> None:
        return None


def given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str) -> dict[str, Any]:
    """What the pages take as given, in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    alipay_key = alipay_testing.generate_key()
    (tmp_path / "alipay_public_key.pem").write_text(alipay_testing.public_key_pem(alipay_key))
    public_key = wx_testing.generate_v3_public_key()
    (tmp_path / "pub_key.pem").write_text(public_key.public_key_pem)
    old, new = wx_testing.generate_v3_platform_certificate(), wx_testing.generate_v3_platform_certificate()
    monkeypatch.setenv("WX_API_KEY", wx_testing.generate_api_key())
    # The console and ops pages read their credentials from the environment, as a deployment would.
    monkeypatch.setenv("PAYNOTIFY_CONSOLE_TOKEN", "a-long-random-console-token")
    monkeypatch.setenv("PAYNOTIFY_CONSOLE_USER", "ops")
    monkeypatch.setenv("PAYNOTIFY_CONSOLE_PASSWORD", "a-long-random-password")
    notifier = Notifier("memory://")
    v3 = {
        "mchid": wx_testing.MCH_ID,
        "appid": wx_testing.APPID,
        "apiv3_key": wx_testing.generate_apiv3_key(),
        "public_key_id": public_key.key_id,
        "public_key": public_key.public_key_pem,
    }
    if "update_account" in code:  # the key-rotation steps change an account that exists
        notifier.add_account("shop", "wechatpay-v3", **v3)
    return {
        "__name__": "doc_example",
        "notifier": notifier,
        "client": httpx.AsyncClient(transport=httpx.ASGITransport(app=notifier.asgi()), base_url="http://t"),
        "orders": Orders(),
        "log": logging.getLogger("doc_example"),
        "store": "memory://",
        "ALIPAY_PUBLIC_KEY": alipay_testing.public_key_pem(alipay_key),
        "API_V2_KEY": wx_testing.generate_api_key(),
        "APIV3_KEY": v3["apiv3_key"],
        "MCHID": v3["mchid"],
        "APPID": v3["appid"],
        "OLD_CERTIFICATE": old.certificate_pem,
        "NEW_CERTIFICATE": new.certificate_pem,
        "PUB_KEY_ID": public_key.key_id,
        "PUBLIC_KEY": public_key.public_key_pem,
    }


def test_every_page_with_python_has_its_blocks_found() -> None:
    pages = {param.id.split("#")[0] for param in blocks()}
    assert {"README.md", "docs/testing.md", "docs/quickstart.md", "docs/providers/wechatpay-v3.md"} <= pages


@pytest.mark.parametrize(("page", "code"), blocks())
async def test_doc_example_runs(
    page: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = given(tmp_path, monkeypatch, code)
    compiled = compile(code, f"{page} (example)", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    try:
        outcome = eval(compiled, namespace)  # noqa: S307 - our own documentation
        if inspect.iscoroutine(outcome):
            await outcome
    finally:
        await namespace["client"].aclose()
        for value in namespace.values():
            if isinstance(value, Notifier):
                await value.aclose()


@pytest.mark.parametrize(
    "module", ["paynotify_alipay.testing", "paynotify_wechatpay.testing", "paynotify_unionpay.testing"]
)
def test_every_public_testing_helper_is_in_all_and_documented(module: str) -> None:
    loaded = importlib.import_module(module)
    defined_here = {
        name
        for name, value in vars(loaded).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module
    }
    assert defined_here <= set(loaded.__all__), defined_here - set(loaded.__all__)
    page = (ROOT / "docs" / "testing.md").read_text()
    section = page.split(f"`{module}`:", 1)[1].split("\n`paynotify_", 1)[0]
    missing = [name for name in loaded.__all__ if f"`{name}" not in section]
    assert missing == [], f"{module}: not in docs/testing.md: {missing}"


def test_readme_payment_result_table_names_every_field() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## PaymentResult", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"`([a-z_]+)`", "\n".join(line.split("|")[1] for line in table.splitlines())))
    assert set(PaymentResult.model_fields) | {"is_paid"} <= documented
    kinds = table.split("`kind`", 1)[1].split("\n", 1)[0]
    assert all(f"`{kind.value}`" in kinds for kind in Kind)
