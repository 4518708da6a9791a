"""The examples run as written: each app is imported with a config and served a real notification."""

from __future__ import annotations

import importlib
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from _servers import subprocess_server, waitress_thread
from conftest import APP_ID, SECRET, example_notify

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
FRAMEWORK_DOCS = ["docs/django.md", "docs/flask.md", "docs/fastapi.md"]


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


def test_flask_example(load_example: Callable[[str], ModuleType]) -> None:
    module = load_example("flask_app")
    headers, body = example_notify("order-9", amount="9.90")
    with waitress_thread(module.application) as url, httpx.Client(base_url=url) as c:
        reply = c.post("/payments/shop/notify", content=body, headers=headers)
        forged = c.post("/payments/shop/notify", content=body.replace(b"9.90", b"0.01"), headers=headers)
        state = c.get("/orders/order-9")
    module.payments.close()
    assert reply.content == b"OK"
    assert forged.status_code == 400
    assert state.json() == {"order_id": "order-9", "paid": "9.90"}


@pytest.mark.parametrize(
    ("command", "stop"),
    [
        (("uvicorn", "django_shop.asgi:application", "--host", "127.0.0.1", "--port", "0"), signal.SIGTERM),
        (("waitress", "--listen=127.0.0.1:0", "django_shop.wsgi:application"), signal.SIGINT),
    ],
    ids=["asgi", "wsgi"],
)
@pytest.mark.usefixtures("load_example")  # for its PAYNOTIFY_CONFIG, which the server inherits
def test_django_example(command: tuple[str, ...], stop: signal.Signals) -> None:
    headers, body = example_notify("order-5", amount="5.00")
    with subprocess_server(*command, cwd=EXAMPLES) as served, httpx.Client(base_url=served.base_url) as c:
        reply = c.post("/payments/shop/notify", content=body, headers=headers)
        forged = c.post("/payments/shop/notify", content=body.replace(b"5.00", b"0.01"), headers=headers)
        state = c.get("/orders/order-5")
        log = served.stop(stop)
    assert reply.content == b"OK", log
    assert forged.status_code == 400
    assert state.json() == {"order_id": "order-5", "paid": "5.00"}


def _example_blocks(doc: str) -> list[tuple[str, str]]:
    """(first line, code) of every python block in a doc."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), flags=re.DOTALL)
    return [(code.split("\n", 1)[0], code) for code in blocks]


@pytest.mark.parametrize("doc", FRAMEWORK_DOCS)
def test_framework_docs_show_the_tested_examples(doc: str) -> None:
    # Every python block is an examples/ file, verbatim (its first line names it), and those files are
    # what the tests above run: nothing in these pages is code that no test executed.
    blocks = _example_blocks(doc)
    assert blocks
    for first, code in blocks:
        assert first.startswith("# examples/"), (doc, first)
        assert code == (ROOT / first.removeprefix("# ")).read_text(), (doc, first)
