"""Operators sign in to the console through a real OpenID Connect provider (npm's
oidc-provider, run as a process: tests/support/oidc_provider.mjs): the whole login in
Chromium as a viewer, an operator and finance, each seeing what their role allows; the session
cookie never readable by the page; sign-out; and the failures: a wrong state, a replayed
code, an expired or forged session, a provider that is down."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from playwright.async_api import Page, expect

from gateway.settings import DEV_SESSION_SECRET
from tests.support.console import ADMIN, Console, console_suite
from tests.support.hosts import free_port

ROOT = Path(__file__).resolve().parents[2]
CLIENT, SECRET = "points-console", "a-client-secret-for-tests"


@asynccontextmanager
async def provider(port: int, redirect: str) -> AsyncIterator[str]:
    node = shutil.which("node") or "node"
    script = ROOT / "tests" / "support" / "oidc_provider.mjs"
    process = await asyncio.create_subprocess_exec(
        node, str(script), str(port), CLIENT, SECRET, redirect,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    issuer = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    if (await http.get(f"{issuer}/.well-known/openid-configuration")).is_success:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
        yield issuer
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


@pytest.fixture
async def signed(private_database: str, request: pytest.FixtureRequest) -> AsyncIterator[Console]:
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/console/auth/callback"
    idp = free_port()
    async with provider(idp, redirect) as issuer:
        env = {
            "GATEWAY_PORT": str(port),
            "GATEWAY_OIDC_ISSUER": issuer,
            "GATEWAY_OIDC_CLIENT_ID": CLIENT,
            "GATEWAY_OIDC_CLIENT_SECRET": SECRET,
            "GATEWAY_OIDC_REDIRECT_URL": redirect,
        }
        async with console_suite(private_database, request, env) as console:
            yield console


async def log_in(page: Page, url: str, login: str) -> None:
    """The provider's login and consent pages, as an operator fills them in."""
    await page.goto(f"{url}/console")
    await page.click("#oidc a")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", "anything")
    await page.click("button[type=submit]")
    consent = page.locator("button[autofocus], button:has-text('Continue')")
    if await consent.count():
        await consent.first.click()
    await expect(page.locator("[data-count=reviews]")).to_be_visible()


async def test_each_role_signs_in_through_the_provider(signed: Console) -> None:
    page = signed.page
    for login, adjusts in (("viewer-vi", False), ("operator-op", True), ("finance-fi", True)):
        await log_in(page, signed.url, login)
        assert await page.evaluate("document.cookie") == ""  # HttpOnly: never the page's
        await page.goto(f"{signed.url}/console#/member/nobody")
        await page.goto(f"{signed.url}/console#/config/rules")
        await expect(page.locator("button[name=new]")).to_be_visible(visible=login == "operator-op")
        me = await page.evaluate("fetch('/v1/admin/me').then(r => r.json())")
        assert (me["user_id"], me["roles"]) == (login, [login.split("-")[0]])
        assert ("adjust" in me["can"]) == adjusts
        cookies = {c["name"]: c for c in await page.context.cookies()}
        session = cookies["points_session"]
        assert (session["httpOnly"], session["sameSite"]) == (True, "Strict")
        await sign_out(page)  # ends the provider's session too, then back here
    # In development the token box stays beside the provider's button (elsewhere it goes).
    assert await page.locator("#paste").is_visible()


async def adjust(page: Page, url: str, points: str) -> None:
    await page.goto(f"{url}/console#/member/m-1")
    await page.fill("input[name=points]", points)
    await page.fill("input[name=note]", f"adjust {points}")
    await page.click("button[name=adjust]")


async def test_an_operator_asks_finance_approves_and_the_log_shows_both(signed: Console) -> None:
    page, url = signed.page, signed.url
    gift = {"points": 10, "note": "a member to work on"}
    headers = {**ADMIN, "Idempotency-Key": "seed"}
    assert (
        await signed.http.post("/v1/admin/members/m-1/adjustments", json=gift, headers=headers)
    ).is_success

    await log_in(page, url, "viewer-vi")  # reads, cannot adjust
    await page.goto(f"{url}/console#/member/m-1")
    await expect(page.locator("#member-points")).to_be_visible()
    await expect(page.locator("button[name=adjust]")).to_be_hidden()
    await sign_out(page)

    await log_in(page, url, "operator-op")
    await adjust(page, url, "5")  # a small amount: at once
    await expect(page.locator("td", has_text="adjust 5")).to_contain_text("operator-op")
    await adjust(page, url, "2000")  # a large one: asks for approval
    await expect(page.locator("#notice")).to_contain_text("Sent for approval")
    await sign_out(page)

    await log_in(page, url, "finance-fi")
    await page.goto(f"{url}/console#/approvals")
    await (
        page.locator("[data-panel=approvals] tr", has_text="operator-op")
        .locator("button[name=approve]")
        .click()
    )
    await expect(page.locator("[data-panel=approvals] p.muted")).to_be_visible()
    await page.goto(f"{url}/console#/member/m-1")
    await expect(page.locator("[data-kpi=available] .value")).to_have_text("2,015")
    await page.goto(f"{url}/console#/audit")
    rows = page.locator("[data-panel=auditLog] tbody tr")
    await expect(rows.filter(has_text="operator-op (operator)")).to_have_count(2)
    await expect(rows.filter(has_text="finance-fi (finance)")).to_have_count(1)


async def sign_out(page: Page) -> None:
    await page.click("#sign-out")
    await page.click("button:has-text('Yes, sign me out')")
    await expect(page.locator("#oidc a")).to_be_visible()
    await page.context.clear_cookies()


async def test_sign_in_failures_are_refused(signed: Console) -> None:
    page, url = signed.page, signed.url
    async with httpx.AsyncClient(base_url=url) as http:
        wrong = await http.get("/console/auth/callback?code=abc&state=forged")
        assert wrong.status_code == 400 and wrong.json()["reason"] == "SIGN_IN_FAILED"

    # A code used once cannot be used again: catch the callback, replay it after the login.
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/auth/callback" in r.url else None)
    await log_in(page, url, "operator-replay")
    replayed = await page.goto(callbacks[-1])
    assert replayed is not None and replayed.status == 400

    # An expired session and a forged one: the API refuses both.
    signer = URLSafeTimedSerializer(DEV_SESSION_SECRET, salt="points-session")
    ended = signer.dumps({"sub": "op", "roles": ["admin"], "exp": int(time.time()) - 1})
    forged = URLSafeTimedSerializer("x" * 40, salt="points-session").dumps(
        {"sub": "op", "roles": ["admin"], "exp": int(time.time()) + 600}
    )
    async with httpx.AsyncClient(base_url=url) as http:
        for cookie, reason in ((ended, "TOKEN_EXPIRED"), (forged, "INVALID_TOKEN")):
            reply = await http.get("/v1/admin/me", headers={"Cookie": f"points_session={cookie}"})
            assert (reply.status_code, reply.json()["reason"]) == (401, reason)


async def test_a_provider_that_is_down_is_said_so(
    private_database: str, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    env = {
        "GATEWAY_PORT": str(port),
        "GATEWAY_OIDC_ISSUER": f"http://127.0.0.1:{free_port()}",  # nothing listens
        "GATEWAY_OIDC_CLIENT_ID": CLIENT,
        "GATEWAY_OIDC_CLIENT_SECRET": SECRET,
        "GATEWAY_OIDC_REDIRECT_URL": f"http://127.0.0.1:{port}/console/auth/callback",
    }
    async with console_suite(private_database, request, env) as console:
        reply = await console.page.goto(f"{console.url}/console/auth/login")
        assert reply is not None and reply.status == 503
        assert "IDENTITY_PROVIDER_UNAVAILABLE" in await reply.text()
