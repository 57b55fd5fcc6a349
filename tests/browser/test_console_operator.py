"""The console as an operator uses it every day, over a seeded program: every page at phone
width and desktop width, in English and Chinese; a backend stopped in the middle; the errors an
operator meets (a bad date, a stale tab, an unknown member, route or lottery) shown in words;
confirmations before risky changes; the review queue a page at a time; the mall managed from
the page; award explanations; CSV exports.

With SCREENSHOTS_DIR set, the walk also saves the README's screenshots there
(`make screenshots`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Locator, Page, ViewportSize, expect

from tests.support.console import (
    ADMIN,
    BACKEND,
    Console,
    a_mug_to_ship,
    events,
    sign_in,
    sign_in_as,
)
from tests.support.gateway_calls import bearer

# Upper-case words that are not codes: acronyms a Chinese operator reads as they are.
# The audit log names each change by its HTTP method and route, as the API documents it.
ACRONYMS = {"CSV", "JSON", "IP", "URL", "API", "HTTP", "HTTPS", "SHA", "POST", "PUT", "DELETE"}
CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\b[A-Z]{3,}\b")
# A translation key shown instead of its words (t() falls back to the key).
KEY = re.compile(r"\b[a-z]+[A-Z][A-Za-z]+\b")
# The README's screenshots: (route, language, width).
SHOTS = {
    ("overview", "en", 1440),
    ("economy", "en", 1440),
    ("mall", "zh-CN", 390),
    ("member/checker", "zh-CN", 390),
    ("experiments/likes", "en", 1440),
}
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1440, "height": 900}


async def ok(reply: Any) -> Any:
    response = await reply
    assert response.is_success, response.text
    return response.json() if response.content else {}


def soon(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def a_program(console: Console) -> str:
    """Rules, a campaign ending soon, a tier, a cap group, a money budget, items (one with
    unlimited stock, one low), a lottery, members with events and reviews, a redemption to ship
    and a webhook subscription; the subscription's id."""
    http = console.http
    rules: dict[str, dict[str, Any]] = {
        "daily-check-in": {
            "kind": "CHECK_IN",
            "event_type": "CHECK_IN",
            "check_in": {"streak_points": [5, 10, 15, 20]},
        },
        "like": {"kind": "ACTION", "event_type": "LIKE", "action": {"points": 2}, "daily_cap": 10},
        "share": {"kind": "ACTION", "event_type": "SHARE", "action": {"points": 3}},
    }
    for rule_id, rule in rules.items():
        await ok(
            http.put(f"/v1/admin/rules/{rule_id}", json={**rule, "enabled": True}, headers=ADMIN)
        )
    await ok(http.put("/v1/admin/cap-groups/social", json={"daily_cap": 20}, headers=ADMIN))
    await ok(
        http.put(
            "/v1/admin/tiers/gold",
            json={"name": "Gold", "min_points_12m": 5000, "multiplier_percent": 150},
            headers=ADMIN,
        )
    )
    budget = {
        "applies_to_all": True,
        "period": "MONTH",
        "money_limit": {"amount_minor": 5_000_000, "currency": "CNY"},
        "over_budget": "CUT",
    }
    await ok(http.put("/v1/admin/budgets/monthly", json=budget, headers=ADMIN))
    campaign = {
        "event_types": ["CHECK_IN"],
        "bonus_points": 20,
        "audience": "ALL",
        "start_at": soon(-3),
        "end_at": soon(3),
        "enabled": True,
    }
    await ok(http.put("/v1/admin/campaigns/welcome-bonus", json=campaign, headers=ADMIN))
    ecard = {
        "type": "VIRTUAL",
        "title": "E-card",
        "points_price": 10,
        "unlimited_stock": True,
        "enabled": True,
    }
    await ok(http.put("/v1/admin/items/ecard", json=ecard, headers=ADMIN))
    lottery = {
        "title": "Wheel",
        "points_per_draw": 10,
        "enabled": True,
        "prizes": [{"prize_id": "big", "kind": "POINTS", "weight": 1, "points": 50, "stock": 2}],
        "no_prize_weight": 3,
    }
    await ok(http.put("/v1/admin/lotteries/wheel", json=lottery, headers=ADMIN))
    await a_mug_to_ship(http)  # the mug: 2 left, one redemption to ship
    await events(http, "checker", "CHECK_IN", 1)
    await events(http, "liker", "LIKE", 3)
    await events(http, "first-on-phone", "SHARE", 1, device_id="shared-phone")
    await events(http, "second-on-phone", "SHARE", 1, device_id="shared-phone")
    hook = {"url": f"{console.receiver.url}/points", "event_types": ["points.credited"]}
    subscription = await ok(http.post("/v1/admin/webhooks/subscriptions", json=hook, headers=ADMIN))
    return str(subscription["subscription"]["subscription_id"])


async def an_experiment(console: Console) -> None:
    """Experiment "likes" running: a like worth 4 for half the members; 16 members liking."""
    arms = [
        {"arm_id": "a", "name": "Today", "role": "CONTROL", "share_bp": 4000},
        {
            "arm_id": "b",
            "role": "TREATMENT",
            "share_bp": 4000,
            "rules": [
                {
                    "rule_id": "like",
                    "kind": "ACTION",
                    "event_type": "LIKE",
                    "action": {"points": 4},
                    "daily_cap": 10,
                    "enabled": True,
                }
            ],
        },
        {"arm_id": "h", "role": "HOLDOUT", "share_bp": 2000},
    ]
    draft = {"name": "Likes x2", "arms": arms, "end_at": soon(14), "event_types": ["LIKE"]}
    http = console.http
    await ok(http.put("/v1/admin/experiments/likes", json=draft, headers=ADMIN))
    await ok(http.post("/v1/admin/experiments/likes/start", headers=ADMIN))
    for n in range(16):
        await events(http, f"fan-{n}", "LIKE", 1 + n % 3)


async def ready(page: Page, route: str, url: str) -> None:
    await page.goto(f"{url}/console#/{route}")
    await expect(page.locator("#page > div[data-ready]")).to_be_attached()


async def visible_text(page: Page) -> str:
    return str(await page.evaluate("document.body.innerText"))


async def overflow(page: Page) -> int:
    """How far the page scrolls sideways (0: it fits)."""
    width = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return int(width)


def untranslated(text: str) -> list[str]:
    codes = [c for c in CODE.findall(text) if c not in ACRONYMS]
    return codes + KEY.findall(text)


async def test_every_page_fits_a_phone_and_speaks_both_languages(console: Console) -> None:
    page = console.page
    subscription = await a_program(console)
    await an_experiment(console)
    await sign_in(console)
    routes = [
        "overview",
        "economy",
        "config/rules",
        "config/campaigns",
        "config/tiers",
        "config/cap-groups",
        "config/budgets",
        "simulate",
        "experiments",
        "experiments/likes",
        "reviews",
        "members",
        "member/checker",
        "member/second-on-phone",
        "mall",
        "mall/wheel",
        "webhooks",
        f"webhooks/{subscription}",
        "approvals",
        "audit",
        "health",
        "nowhere",
    ]
    shots = os.environ.get("SCREENSHOTS_DIR")
    for language, size in (("zh-CN", PHONE), ("en", DESKTOP), ("en", PHONE), ("zh-CN", DESKTOP)):
        await page.set_viewport_size(size)
        await page.select_option("#language", language)
        for route in routes:
            await ready(page, route, console.url)
            assert await overflow(page) <= 0, (language, size, route, await overflow(page))
            text = await visible_text(page)
            leaks = ("undefined", "[object", "NaN", "Infinity")
            assert not [w for w in leaks if w in text] and "null" not in text.split(), (route, text)
            if language == "zh-CN":
                assert untranslated(text) == [], (route, untranslated(text))
            if shots and (route, language, size["width"]) in SHOTS:
                name = f"console-{route.split('/')[0]}-{language}-{size['width']}.png"
                await page.screenshot(path=str(Path(shots) / name), full_page=True)


async def test_a_backend_stopped_empties_only_its_own_panels(console: Console) -> None:
    page = console.page
    await a_program(console)
    await sign_in(console)
    await ready(page, "mall", console.url)
    await expect(page.locator("[data-panel=items] tbody tr")).to_have_count(2)

    await console.mall.stop()
    for language, down, unavailable in (
        ("en", "Down", "A service is unavailable"),
        ("zh-CN", "不可用", "有服务暂不可用"),
    ):
        await page.select_option("#language", language)
        await ready(page, "health", console.url)
        await expect(page.locator("[data-status=UNAVAILABLE]")).to_have_text(down)
        await expect(page.locator("[data-service=mall] [role=alert]")).to_contain_text(unavailable)
        await expect(page.locator("[data-service=rules] [role=alert]")).to_have_count(0)
        await expect(page.locator("[data-panel=lastExpiryRun] [role=alert]")).to_have_count(0)

        await ready(page, "mall", console.url)
        await expect(page.locator("[data-panel=items] [role=alert]")).to_contain_text(unavailable)
        await expect(page.locator("[data-panel=redemptions] [role=alert]")).to_be_visible()
        await expect(page.locator("[data-panel=items] button[name=retry]")).to_be_visible()

        await ready(page, "overview", console.url)
        await expect(page.locator("[data-panel=lowStock] [role=alert]")).to_be_visible()
        await expect(page.locator("[data-count=reviews]")).to_have_text("1")
        text = await visible_text(page)
        assert "127.0.0.1" not in text and "backends failing" not in text, text


async def test_errors_are_shown_where_they_happen_and_in_words(console: Console) -> None:
    page, http = console.page, console.http
    await a_program(console)
    await sign_in(console)

    # A start after the end: the old figures go, the reason shows.
    await ready(page, "economy", console.url)
    await expect(page.locator("[data-kpi=liability] .value")).to_be_visible()
    await page.fill("input[name=from]", "2026-05-10")
    await page.fill("input[name=to]", "2026-05-01")
    await page.click("#refresh")
    await expect(page.locator("[role=alert]", has_text="start date")).to_be_visible()
    await expect(page.locator("[data-kpi=liability]")).to_have_count(0)

    # A stale tab: the mug was delivered elsewhere; "Mark shipped" says so.
    await ready(page, "mall", console.url)
    row = page.locator("tr", has_text="buyer")
    [mug] = (await ok(http.get("/v1/admin/redemptions", headers=ADMIN)))["redemptions"]
    path = f"/v1/admin/users/buyer/redemptions/{mug['redemption_id']}/shipment"
    await ok(http.post(path, json={"status": "DELIVERED"}, headers=ADMIN))
    await row.locator("button").click()
    await expect(page.locator("[data-panel=redemptions] [role=alert]")).to_contain_text(
        "already delivered"
    )

    # Unknown things are "not found", never a blank page or a zero balance to adjust.
    for route in ("nowhere", "config/nowhere"):
        await ready(page, route, console.url)
        await expect(page.locator("#not-found")).to_be_visible()
    await ready(page, "member/nobody-at-all", console.url)
    await expect(page.locator("#not-found")).to_contain_text("No member with this id")
    await expect(page.locator("button[name=adjust]")).to_have_count(0)
    await ready(page, "mall/no-such-lottery", console.url)
    await expect(page.locator("[data-panel=lotteries] [role=alert]")).to_contain_text(
        "no lottery no-such-lottery"
    )
    await expect(page.locator("[data-panel=items] tbody tr")).to_have_count(2)
    await page.select_option("#language", "zh-CN")  # the refusal in Chinese words
    await ready(page, "mall/no-such-lottery", console.url)
    lottery = page.locator("[data-panel=lotteries] [role=alert]")
    await expect(lottery).to_contain_text("没有这个抽奖活动。")
    await page.select_option("#language", "en")

    # A validation error: each field once, in words, never a regular expression.
    await ready(page, "config/rules", console.url)
    await page.click("button[name=new]")
    await page.fill("input[name=id]", "Bad Id")
    await page.click("button[name=save]")
    alert = page.locator("[role=alert]", has_text="lower-case letters")
    await expect(alert).to_be_visible()
    message = await alert.inner_text()
    assert "^[" not in message and message.count("lower-case letters") == 1, message


async def test_risky_changes_ask_first(console: Console) -> None:
    page, http = console.page, console.http
    await a_program(console)
    await sign_in(console)
    await ready(page, "config/rules", console.url)
    row = page.locator("tr", has_text="Like")

    console.accept = False  # the operator changes their mind: nothing happens
    await row.locator("button[name=toggle]").click()
    await expect(row).to_contain_text("Disable")
    rules = (await ok(http.get("/v1/admin/rules", headers=ADMIN)))["rules"]
    assert [r["enabled"] for r in rules if r["rule_id"] == "like"] == [True]

    console.accept = True
    await row.locator("button[name=toggle]").click()
    await expect(row).to_contain_text("Enable")
    assert console.asked == ["Disable it? It stops applying at once."] * 2


async def test_the_review_queue_a_page_at_a_time(console: Console) -> None:
    page, http = console.page, console.http
    await ok(
        http.put(
            "/v1/admin/rules/share",
            json={
                "kind": "ACTION",
                "event_type": "SHARE",
                "enabled": True,
                "action": {"points": 3},
            },
            headers=ADMIN,
        )
    )
    batch = [
        {"event_id": f"e{i}", "user_id": f"farm-{i:03}", "type": "SHARE", "device_id": "farm-1"}
        for i in range(121)
    ]
    await ok(http.post("/v1/events/batch", json={"events": batch}, headers=BACKEND))
    await sign_in(console)
    await ready(page, "reviews", console.url)
    await expect(page.locator("#review-total")).to_have_text("120")
    signal = page.locator("td", has_text="Device shared by many accounts").first
    await expect(signal).to_contain_text("farm-1")

    await page.check("input[name=select-all]")
    await page.click("button[name=reject]")
    await expect(page.locator("#review-total")).to_have_text("20")
    assert console.asked[-1].startswith("Reject the selected events?")
    await expect(page.locator("[data-page=reviews] tbody tr")).to_have_count(20)

    # The CSV has what the table shows: a header and the 20 rows left.
    async with page.expect_download() as download:
        await page.click("a.csv")
    saved = Path(await (await download.value).path())
    content = (await asyncio.to_thread(saved.read_bytes)).decode("utf-8-sig")
    lines = content.strip().split("\r\n")
    assert lines[0].split(",")[:2] == ["User", "Event"] and len(lines) == 21, lines[:3]


async def test_members_are_found_by_prefix_points_and_inactivity(console: Console) -> None:
    page = console.page
    await a_program(console)
    await sign_in(console)
    await ready(page, "members", console.url)
    found = page.locator("[data-panel=found] tbody tr")
    await expect(found).to_have_count(4)  # buyer, checker, first-on-phone, liker: those credited
    await page.fill("input[name=prefix]", "li")
    await page.click("button[name=search]")
    await expect(found).to_have_count(1)
    await expect(found).to_contain_text("liker")
    await page.fill("input[name=prefix]", "")
    await page.fill("input[name=min_available]", "50")
    await page.click("button[name=search]")
    await expect(found).to_have_count(0)  # nobody holds 50 available: the list says so
    await page.fill("input[name=min_available]", "0")
    await page.fill("input[name=inactive_since]", "2000-01-01")
    await page.click("button[name=search]")
    await expect(page.locator("[data-panel=found] p.muted")).to_be_visible()
    await page.fill("input[name=inactive_since]", "")
    await page.click("button[name=search]")
    await page.click("[data-panel=found] a:has-text('checker')")
    await expect(page.locator("#member-id")).to_have_text("checker")


async def new_item(page: Page, item_id: str, title: str, type: str = "PHYSICAL") -> Locator:
    """The mall page's new-item form, filled in but not saved (5 points each)."""
    await page.click("button[name=new-item]")
    form = page.locator("form[name=item]")
    await form.locator("input[name=item_id]").fill(item_id)
    await form.locator("input[name=title]").fill(title)
    await form.locator("select[name=type]").select_option(type)
    await form.locator("input[name=points_price]").fill("5")
    return form


async def test_the_mall_is_managed_from_its_page(console: Console) -> None:
    page, http = console.page, console.http
    await a_program(console)
    await sign_in(console)
    await ready(page, "mall", console.url)

    form = await new_item(page, "sticker", "Sticker", type="VIRTUAL")
    await form.locator("input[name=unlimited_stock]").check()
    await form.locator("button[name=save]").click()
    sticker = page.locator("[data-panel=items] tr", has_text="sticker")
    await expect(sticker).to_contain_text("Unlimited")
    await expect(sticker).to_contain_text("Virtual goods")

    await sticker.locator("button[name=toggle]").click()
    await expect(page.locator("[data-panel=items] tr", has_text="sticker")).to_contain_text("Off")
    items = (await ok(http.get("/v1/admin/items", headers=ADMIN)))["items"]
    assert [i["enabled"] for i in items if i["item_id"] == "sticker"] == [False]
    catalog = await ok(http.get("/v1/catalog", headers=bearer("a-member")))
    assert "sticker" not in json.dumps(catalog)

    # Lotteries are listed; one opens with its odds and seed commitment.
    await page.click("[data-panel=lotteries] a", timeout=5000)
    await expect(page.locator("#seed-commitment")).to_have_text(re.compile("^[0-9a-f]{64}$"))
    await expect(page.locator("tr", has_text="big")).to_contain_text("25%")

    # A lottery made from the page (disabled, as the template is), then enabled.
    await page.click("button[name=new-lottery]")
    await page.fill("input[name=lottery_id]", "spin")
    template = json.loads(await page.locator("textarea[name=lottery]").input_value())
    await page.fill("textarea[name=lottery]", json.dumps({**template, "title": "Spin"}))
    await page.click("button[name=save-lottery]")
    spin = page.locator("[data-panel=lotteries] tr", has_text="Spin")
    await expect(spin).to_contain_text("Off")
    await spin.locator("button[name=toggle-lottery]").click()
    await expect(page.locator("[data-panel=lotteries] tr", has_text="Spin")).to_contain_text("On")

    # Redemptions filter by status.
    await page.select_option("[data-panel=redemptions] select[name=status]", "FAILED")
    await expect(page.locator("[data-panel=redemptions] p.muted")).to_be_visible()


async def test_an_award_explains_itself_and_money_reads_as_money(console: Console) -> None:
    page = console.page
    await a_program(console)
    await sign_in(console)
    await ready(page, "member/checker", console.url)
    award = page.locator(".award", has_text="daily-check-in")
    await expect(award).to_contain_text("daily-check-in: 25 = base 5 (streak day 1)")
    await expect(award).to_contain_text("+ 20 from campaigns (welcome-bonus)")
    await expect(page.locator("#member-id")).to_have_text("checker")

    await ready(page, "economy", console.url)
    issued = int((await page.locator("[data-kpi=liability] .value").inner_text()).replace(",", ""))
    await expect(page.locator("[data-kpi=liabilityValue] .value")).to_contain_text(
        f"{issued / 100:.2f}"
    )
    budget = page.locator("[data-panel=budgets] tr", has_text="monthly")
    await expect(budget).to_contain_text("¥50,000.00")
    await expect(budget).to_contain_text("%")
    await expect(page.locator("svg.chart [data-axis=y]")).to_have_text("Points per day")

    # Simulated check-ins fall a day apart, so the streak builds: 5 + 10 + 15, and 20 each.
    await ready(page, "simulate", console.url)
    await page.fill("input[name=users]", "1")
    await page.fill("input[name=times]", "3")
    await page.click("button:has-text('Generate')")
    await page.click("button[name=run]")
    today = page.locator("#simulation tr", has_text="daily-check-in")
    await expect(today.locator("td").nth(1)).to_have_text("90")


async def test_a_new_item_saved_twice_is_one_intent(console: Console) -> None:
    """The new changing buttons keep the console's rule: a retry sends the same key."""
    page = console.page
    sent: list[str] = []
    page.on(
        "request",
        lambda r: (
            sent.append(r.headers.get("idempotency-key", ""))
            if r.method != "GET" and "/v1/admin/items/" in r.url
            else None
        ),
    )
    await sign_in(console)
    await ready(page, "mall", console.url)
    form = await new_item(page, "pen", "Pen")
    await form.locator("input[name=stock]").fill("4")
    await form.locator("button[name=save]").dblclick()
    await expect(page.locator("[data-panel=items] tr", has_text="pen")).to_have_count(1)
    assert len(set(sent)) == 1 and all(sent), sent


async def test_each_role_sees_what_it_may_do(console: Console) -> None:
    page = console.page
    await a_program(console)
    # role: (adjusts, edits rules, edits budgets, manages webhooks)
    expected = {
        "viewer": (False, False, False, False),
        "operator": (True, True, False, False),
        "finance": (True, False, True, False),
        "admin": (True, True, True, True),
    }
    for role, (adjusts, rules, budgets, hooks) in expected.items():
        await sign_in_as(console, role)
        await ready(page, "member/checker", console.url)
        await expect(page.locator("button[name=adjust]")).to_be_visible(visible=adjusts)
        await ready(page, "config/rules", console.url)
        await expect(page.locator("button[name=new]")).to_be_visible(visible=rules)
        await ready(page, "config/budgets", console.url)
        await expect(page.locator("button[name=new]")).to_be_visible(visible=budgets)
        await ready(page, "webhooks", console.url)
        await expect(page.locator("button[name=rotate]")).to_be_visible(visible=hooks)

    # An operator's adjustment above the limit waits for a second person; finance approves.
    await sign_in_as(console, "operator")
    await ready(page, "member/checker", console.url)
    await page.fill("input[name=points]", "5000")
    await page.fill("input[name=note]", "large goodwill")
    await page.click("button[name=adjust]")
    await expect(page.locator("#notice")).to_contain_text("Sent for approval")
    await expect(page.locator("[data-kpi=available] .value")).to_have_text("25")
    await sign_in_as(console, "finance")
    await ready(page, "approvals", console.url)
    asked = page.locator("[data-panel=approvals] tr", has_text="ops-operator")
    await expect(asked).to_contain_text("an adjustment of more than 1000 points")
    await asked.locator("button[name=approve]").click()
    await expect(page.locator("[data-panel=approvals] p.muted")).to_be_visible()  # none waits
    await ready(page, "member/checker", console.url)
    await expect(page.locator("[data-kpi=available] .value")).to_have_text("5,025")
    await expect(page.locator("td", has_text="large goodwill")).to_contain_text("ops-operator")

    # Finance reads the audit log: the request, then the approval that carried it out.
    await expect(page.locator("#nav [data-page=audit]")).to_be_visible()
    await ready(page, "audit", console.url)
    request = page.locator("[data-panel=auditLog] tbody tr", has_text="ops-operator (operator)")
    await expect(request).to_contain_text("/v1/admin/members/checker/adjustments")
    await expect(request).to_contain_text("202")
    decision = page.locator("[data-panel=auditLog] tbody tr", has_text="ops-finance (finance)")
    await expect(decision).to_contain_text("/approve")
    await page.fill("input[name=actor]", "ops-operator")
    await page.click("button[name=search]")
    await expect(page.locator("[data-panel=auditLog] tbody tr")).to_have_count(1)
    await sign_in_as(console, "operator")
    await expect(page.locator("#nav [data-page=audit]")).to_be_hidden()
