"""The operator console over a real suite, for the browser tests: every service on loopback
ports with a private database, the gateway, Debian's Chromium driven by Playwright, and a
webhook receiver. Helpers sign in and feed events the way an app would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.async_api import Dialog, Page, async_playwright, expect

from gateway.auth import mint
from services.common.server import ServiceHost
from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from services.webhooks.server import SPEC as WEBHOOKS
from tests.support.browser import CHROMIUM, screenshot_on_failure
from tests.support.gateway_calls import AUTH, bearer, gateway_env, operator_keys
from tests.support.hosts import running, serving_gateway
from tests.support.receiver import Receiver, receiving

BACKEND = bearer("app-backend", "events:write")
ADMIN = bearer("operator", "admin")


@dataclass
class Console:
    page: Page
    http: httpx.AsyncClient
    url: str
    receiver: Receiver  # a webhook receiver on loopback, which the suite may deliver to
    mall: ServiceHost  # stopped by tests of a backend going down
    asked: list[str] = field(default_factory=list)  # every confirmation the console asked for
    accept: bool = True  # the answer to the next confirmations


@asynccontextmanager
async def console_suite(
    private_database: str,
    request: pytest.FixtureRequest,
    gateway: Mapping[str, str] | None = None,
) -> AsyncIterator[Console]:
    """The whole suite and a browser page on it; fails the test on any script error."""
    hooks = {
        "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOKS_POLL_SECONDS": "0.1",
        "WEBHOOKS_RETRY_SECONDS": "0.2",  # one quick retry, then the service gives up
    }
    async with (
        receiving() as receiver,
        running(WEBHOOKS, private_database, hooks) as webhooks,
        running(
            LEDGER, private_database, {"WEBHOOKS_ADDR": f"127.0.0.1:{webhooks.port}"}
        ) as ledger,
    ):
        env = {
            "LEDGER_ADDR": f"127.0.0.1:{ledger.port}",
            "WEBHOOKS_ADDR": f"127.0.0.1:{webhooks.port}",
            "RULES_SETTLE_SECONDS": "0.1",
            "RULES_ACCOUNTS_PER_DEVICE": "2",  # the second account on a device is reviewed
        }
        async with running(RULES, private_database, env) as rules:
            env["RULES_ADDR"] = f"127.0.0.1:{rules.port}"
            async with (
                running(MALL, private_database, env) as mall,
                serving_gateway(
                    {
                        **gateway_env(ledger.port, rules.port, mall.port, webhooks.port),
                        **(gateway or {}),
                    }
                ) as url,
                httpx.AsyncClient(
                    base_url=url, timeout=20, event_hooks={"request": [operator_keys]}
                ) as http,
                async_playwright() as playwright,
            ):
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox"]
                )
                page = await browser.new_page(
                    locale="en-US", viewport={"width": 1280, "height": 1000}
                )
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                console = Console(page, http, url, receiver, mall)

                async def confirm(dialog: Dialog) -> None:
                    console.asked.append(dialog.message)
                    await (dialog.accept() if console.accept else dialog.dismiss())

                page.on("dialog", confirm)
                async with screenshot_on_failure(page, request):
                    yield console
                await browser.close()
                assert not errors, errors  # no script error on any page


async def sign_in(console: Console) -> None:
    page = console.page
    served = await page.goto(f"{console.url}/console")
    assert (
        served is not None and "frame-ancestors 'none'" in served.headers["content-security-policy"]
    )
    member = mint(AUTH, "not-an-operator")
    await page.fill("#token", member)
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("#sign-in-error")).to_have_text(
        "This token carries no operator role."
    )
    await page.fill("#token", mint(AUTH, "ops-alice", ("admin",)))
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("[data-count=reviews]")).to_be_visible()  # the overview
    # The token lives in the page's memory only: nothing stored, no cookie to ride.
    kept = await page.evaluate(
        "localStorage.length + sessionStorage.length + document.cookie.length"
    )
    assert kept == 0


async def sign_in_as(console: Console, role: str) -> None:
    """Signed in as `ops-<role>`, holding that one role (the claim an identity provider sends)."""
    page = console.page
    await page.goto(f"{console.url}/console")
    if await page.locator("#sign-out").is_visible():
        await page.click("#sign-out")
    await page.fill("#token", mint(AUTH, f"ops-{role}", roles=(role,)))
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("[data-count=reviews]")).to_be_visible()


async def events(http: httpx.AsyncClient, user: str, kind: str, count: int, **fields: str) -> None:
    for _ in range(count):
        reply = await http.post(
            "/v1/events",
            json={"user_id": user, "type": kind, **fields},
            headers={**BACKEND, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert reply.is_success, reply.text


async def kpi(page: Page, name: str) -> str:
    return (await page.locator(f"[data-kpi={name}] .value").inner_text()).strip()


async def a_mug_to_ship(http: httpx.AsyncClient) -> None:
    """A mug in stock (3), and member "buyer" given points and redeeming one: a completed
    redemption whose shipment is PENDING."""
    admin = bearer("operator", "admin")
    mug = {"type": "PHYSICAL", "title": "Mug", "points_price": 50, "stock": 3, "enabled": True}
    assert (await http.put("/v1/admin/items/mug", json=mug, headers=admin)).is_success
    gift = {"points": 80, "note": "gift"}
    adjusted = await http.post("/v1/admin/members/buyer/adjustments", json=gift, headers=admin)
    assert adjusted.is_success, adjusted.text
    redeemed = await http.post(
        "/v1/me/redemptions",
        json={"item_id": "mug", "shipping_address": "1 Road, Shanghai"},
        headers={**bearer("buyer"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert redeemed.json()["status"] == "COMPLETED", redeemed.text
