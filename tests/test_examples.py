"""The examples run as written: each app is imported with a config and served a real notification."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from conftest import APP_ID, SECRET, example_notify

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def load_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ModuleType]]:
    (tmp_path / "secret").write_text(SECRET)
    config = tmp_path / "paynotify.toml"
    config.write_text(
        f'store = "sqlite:///events.db"\n[accounts.shop]\nprovider = "examplepay"\napp_id = "{APP_ID}"\n'
        'secret_file = "secret"\n'
    )
    monkeypatch.setenv("PAYNOTIFY_CONFIG", str(config))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        loaded.append(name)
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


async def test_starlette_example(load_example: Callable[[str], ModuleType]) -> None:
    module = load_example("starlette_app")
    headers, body = example_notify("order-42", amount="12.50")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=module.app), base_url="http://shop") as c:
        reply = await c.post("/payments/shop/notify", content=body, headers=headers)
        state = await c.get("/orders/order-42")
    assert reply.content == b"OK"
    assert state.json() == {"order_id": "order-42", "state": "paid 12.50 CNY"}
    await module.notifier.aclose()


async def test_fastapi_example(load_example: Callable[[str], ModuleType]) -> None:
    module = load_example("fastapi_app")
    headers, body = example_notify("order-7")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=module.app), base_url="http://shop") as c:
        reply = await c.post("/payments/shop/notify", content=body, headers=headers)
        forged = await c.post(
            "/payments/shop/notify", content=body.replace(b"88.88", b"0.01"), headers=headers
        )
        state = await c.get("/orders/order-7")
    assert reply.content == b"OK"
    assert forged.status_code == 400
    assert state.json() == {"order_id": "order-7", "paid": "88.88"}
    await module.notifier.aclose()


def test_plugin_example_is_installed_through_its_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="paynotify.providers")}
    assert names.get("examplepay") == "paynotify_examplepay:ExamplePayProvider"
