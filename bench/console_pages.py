"""Each console page loaded in Chromium over 100,000 members, 1,000,000 transfers spread over a
year and 1,000,000 awards (goal: every page under 1 s). A page counts as loaded when its
content is on screen, so the figure holds the API calls, the services and the rendering.

Floor in the same run: the sign-in page (static files only) loaded the same way.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import asyncpg
from playwright.async_api import Page, async_playwright

from bench.support import load_members, scratch_database, suite
from gateway.auth import mint
from gateway.settings import DEV_SECRET, AuthSettings
from tests.support.browser import CHROMIUM

MEMBERS = int(os.environ.get("BENCH_MEMBERS", "100000"))
PER_MEMBER = 10  # transfers (and awards) per member
ROUNDS = 5
# Every page (and one of each kind of argument); a page has loaded once all its panels have
# (`data-ready` on the page's root, set by the console).
PAGES = [
    "overview",
    "economy",
    "config/rules",
    "config/budgets",
    "simulate",
    "reviews",
    "members",
    "member/member-42",
    "mall",
    "approvals",
    "webhooks",
    "audit",
    "health",
]
LOADED = "#page > div[data-ready]"


async def spread_history(url: str) -> None:
    """The loaded transfers over the last year, and as many settled awards beside them. Time
    follows insertion order, as in a real ledger (rows are appended as time passes), so a
    month's rows lie together on disk as they would in production."""
    rows = MEMBERS * PER_MEMBER
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            f"""
            -- Loaded in transfer_id order, so the new row versions are written in that order.
            UPDATE ledger.transfers
            SET created_at = now() - ({rows} - transfer_id) * interval '365 days' / {rows};
            INSERT INTO rules.awards (user_id, event_id, rule_id, points, transfer_id, created_at,
                                      occurred_at)
            SELECT 'member-' || (g % {MEMBERS} + 1), 'load-' || g, 'like', 10, g::text, at, at
            FROM generate_series(1, {rows}) g,
                 LATERAL (SELECT now() - ({rows} - g) * interval '365 days' / {rows} AS at) t;
            ANALYZE rules.awards;
            """
        )
        await conn.execute("VACUUM ANALYZE ledger.transfers")  # on its own: not in a transaction
    finally:
        await conn.close()


async def load_time(page: Page, url: str, selector: str) -> float:
    started = time.perf_counter()
    await page.goto(url)
    await page.wait_for_selector(selector)
    return (time.perf_counter() - started) * 1000


async def main() -> None:
    token = mint(AuthSettings("HS256", DEV_SECRET, None, None), "bench-operator", ("admin",))
    async with scratch_database("bench_console") as url:
        async with suite(url, ("ledger",)):
            pass  # the ledger's schema, for the bulk load
        started = time.perf_counter()
        await load_members(url, MEMBERS, PER_MEMBER, "now() + interval '1 year'")
        async with suite(url, ("rules",)):
            pass  # the rules' schema
        await spread_history(url)
        print(
            f"loaded {MEMBERS:,} members, {MEMBERS * PER_MEMBER:,} transfers and awards "
            f"in {time.perf_counter() - started:.0f} s"
        )
        async with (
            suite(url, ("ledger", "rules", "mall", "webhooks", "gateway")) as running,
            async_playwright() as playwright,
        ):
            base = f"http://127.0.0.1:{running.ports['gateway']}/console"
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            page = await browser.new_page()
            floor = [await load_time(page, base, "#token") for _ in range(ROUNDS)]
            await page.fill("#token", token)
            await page.click("#sign-in button[type=submit]")
            await page.wait_for_selector(LOADED)
            print(f"floor  sign-in page (static)      median {statistics.median(floor):7.0f} ms")
            for name in PAGES:
                times = []
                for _ in range(ROUNDS):
                    # From another page (the simulator, which calls no API), as a click in the
                    # menu does: the page renders afresh with its own API calls.
                    away = "reviews" if name == "simulate" else "simulate"
                    await page.evaluate(f"location.hash = '#/{away}'")
                    await page.wait_for_selector(f"div[data-page={away}][data-ready]")
                    started = time.perf_counter()
                    await page.evaluate(f"location.hash = '#/{name}'")
                    await page.wait_for_selector(f"div[data-page={name.split('/')[0]}][data-ready]")
                    times.append((time.perf_counter() - started) * 1000)
                median, worst = statistics.median(times), max(times)
                verdict = "ok" if worst < 1000 else "OVER 1 s"
                print(
                    f"page   {name:<28} median {median:7.0f} ms  worst {worst:6.0f} ms  {verdict}"
                )
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
