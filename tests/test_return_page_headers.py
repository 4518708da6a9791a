"""The buyer's return page (and the redirect to the shop's return_url) is not to be framed, sniffed,
cached or made to load anything (issue 25, item 6): each header checked on each reply, as the
browser gets it through the ASGI route. Alipay returns signed with a throwaway key."""

from __future__ import annotations

import httpx
import pytest
from paynotify_alipay.testing import SELLER_ID, generate_key, make_return, public_key_pem

from paynotify import Notifier

APP_ID = "2021004100000000"
KEY = generate_key()
HEADERS = {
    "content-security-policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
PAGES = {
    "thanks": (None, KEY, 200),
    "not valid": (None, generate_key(), 400),
    "redirect": ("https://shop.example/orders/{order_id}", KEY, 303),
}


@pytest.fixture(params=list(PAGES))
async def reply(request: pytest.FixtureRequest) -> httpx.Response:
    return_url, signer, status = PAGES[request.param]
    n = Notifier("memory://")
    settings = {"return_url": return_url} if return_url else {}
    settings.update(app_id=APP_ID, alipay_public_key=public_key_pem(KEY), seller_id=SELLER_ID)
    n.add_account("shop", "alipay", **settings)
    query = make_return(signer, app_id=APP_ID, out_trade_no="o-1").decode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=n.asgi()), base_url="http://shop") as c:
        response = await c.get(f"/shop/return?{query}")
    await n.aclose()
    assert response.status_code == status
    return response


@pytest.mark.parametrize("header", list(HEADERS))
async def test_the_return_reply_carries(reply: httpx.Response, header: str) -> None:
    assert reply.headers.get(header) == HEADERS[header]
