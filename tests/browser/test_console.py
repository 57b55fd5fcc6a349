"""The operator console in a real browser (Debian's Chromium driven by Playwright) over a real
suite: an operator signs in, defines a rule, simulates and publishes it, watches the economy
page move as events arrive through the API, approves a review, adjusts a member's points and
reads why, switches language, and subscribes a webhook receiver and follows its deliveries. A
failing test leaves a screenshot of the page under test-results/<test name>/."""

from __future__ import annotations

import json

from playwright.async_api import Request, expect
from standardwebhooks.webhooks import Webhook

from tests.support.console import Console, a_mug_to_ship, events, kpi, sign_in
from tests.support.gateway_calls import bearer


async def test_a_rule_from_draft_to_the_economy_page(console: Console) -> None:
    page = console.page
    await sign_in(console)
    await page.click("[data-page=economy]")
    assert await kpi(page, "issued") == "0"

    # Define a rule; the API's validation message comes back to the form first.
    await page.click("[data-page=config]")
    await page.click("button[name=new]")
    await page.fill("input[name=id]", "like")
    await page.fill("input[name=name]", "Likes")
    await page.select_option("select[name=kind]", "ACTION")
    await page.select_option("select[name=event_type]", "LIKE")
    await page.check("input[name=enabled]")
    await page.fill("input[name='action.points']", "0")
    await page.fill("input[name=daily_cap]", "0")  # the template suggests 5
    await page.click("button[name=save]")
    await expect(page.locator("[role=alert]", has_text="rule.action.points")).to_be_visible()
    await page.fill("input[name='action.points']", "2")
    await page.click("button[name=save]")
    await expect(
        page.locator("td", has_text="Likes · Action · Like · 2 points each time")
    ).to_be_visible()
    rule = {"kind": "ACTION", "event_type": "LIKE", "enabled": True, "action": {"points": 2}}

    # Simulate a draft of 5 points a like beside the published 2.
    await page.click("[data-page=simulate]")
    draft = {**rule, "rule_id": "like", "action": {"points": 5}}
    await page.fill("textarea[name=draft_rules]", json.dumps([draft]))
    likes = [{"event_id": f"sim-{i}", "user_id": "sim-user", "type": "LIKE"} for i in range(3)]
    await page.fill("textarea[name=events]", json.dumps(likes))
    await page.click("button[name=run]")
    row = page.locator("#simulation tr", has_text="like")
    await expect(row).to_contain_text("6")  # today: 3 likes × 2
    await expect(row).to_contain_text("15")  # the draft: 3 likes × 5

    # Events arrive through the API; the economy page shows them, in figures and in the chart.
    await events(console.http, "member-1", "LIKE", 4)
    await page.click("[data-page=economy]")
    for _ in range(50):
        await page.click("#refresh")
        if await kpi(page, "issued") == "8":
            break
        await page.wait_for_timeout(100)
    assert await kpi(page, "issued") == "8"
    assert await kpi(page, "liability") == "8"
    await expect(page.locator("td", has_text="like").first).to_be_visible()
    issued = page.locator("polyline[data-series=issued]")
    assert any(
        float(p.split(",")[1]) < 200 for p in (await issued.get_attribute("points") or "").split()
    )

    # The same draft replayed over the day's real traffic: the four likes recorded.
    await page.click("[data-page=simulate]")
    await page.fill("textarea[name=draft_rules]", json.dumps([draft]))
    await page.fill("input[name=replay_days]", "1")
    await page.click("button[name=replay]")
    replayed = page.locator("#simulation tr", has_text="like")
    await expect(replayed).to_contain_text("8")  # today: 4 likes × 2
    await expect(replayed).to_contain_text("20")  # the draft: 4 likes × 5

    # An edit in the form; the versions show who saved each, and what changed by field.
    await page.goto(f"{console.url}/console#/config/rules")
    await page.click("tr:has-text('Likes') >> text=Edit")
    await page.fill("input[name='action.points']", "3")
    await page.click("button[name=save]")
    # Replayed over the week's likes it costs more: it waits for a second person.
    await expect(page.locator("#notice")).to_contain_text("Sent for approval")
    second = bearer("second-admin", "admin")
    pending = (await console.http.get("/v1/admin/approvals?status=PENDING", headers=second)).json()
    [approval] = pending["approvals"]
    assert approval["author"] == "ops-alice" and "raises the cost" in approval["reason"]
    url = f"/v1/admin/approvals/{approval['approval_id']}/approve"
    done = (await console.http.post(url, headers=second)).json()
    assert (done["status"], done["result_status"]) == ("DONE", 200), done
    await page.goto(f"{console.url}/console#/overview")
    await page.goto(f"{console.url}/console#/config/rules")
    await expect(page.locator("td", has_text="3 points each time")).to_be_visible()
    await page.click("tr:has-text('Likes') >> text=Versions")
    await expect(page.locator("td", has_text="ops-alice").first).to_be_visible()
    await expect(page.locator(".diff h3")).to_have_text("like: v1 → v2")
    await expect(page.locator(".diff tbody tr")).to_have_count(1)
    await expect(page.locator(".diff tbody tr")).to_contain_text("action.points23")


async def test_reviews_members_and_language(console: Console) -> None:
    page = console.page
    await console.http.put(
        "/v1/admin/rules/share",
        json={"kind": "ACTION", "event_type": "SHARE", "enabled": True, "action": {"points": 3}},
        headers=bearer("operator", "admin"),
    )
    await events(console.http, "first-on-device", "SHARE", 1, device_id="shared-phone")
    await events(console.http, "second-on-device", "SHARE", 1, device_id="shared-phone")
    await sign_in(console)

    await page.click("[data-page=reviews]")
    await page.check("input[data-event]")
    await page.click("button[name=approve]")
    await expect(page.locator("[data-page=reviews] p.muted")).to_be_visible()  # queue empty

    await page.click("[data-page=members]")
    await page.fill("input[name=prefix]", "second-on")
    await page.click("button[name=search]")
    await page.click("a:has-text('second-on-device')")
    await expect(page.locator("#member-id")).to_have_text("second-on-device")
    await expect(page.locator("[data-kpi=available] .value")).to_have_text("3")
    await page.fill("input[name=points]", "-2")
    await page.fill("input[name=note]", "goodwill correction")
    await page.click("button[name=adjust]")
    await expect(page.locator("[data-kpi=available] .value")).to_have_text("1")
    await expect(page.locator("td", has_text="goodwill correction")).to_contain_text("ops-alice")
    await expect(page.locator("td", has_text="Approved")).to_be_visible()

    await page.select_option("#language", "zh-CN")
    await expect(page.locator("[data-page=economy]")).to_have_text("积分经济")
    await expect(page.locator("[data-kpi=available] .label")).to_have_text("可用")


async def test_a_shipped_redemption_moves_forward_from_the_mall_page(console: Console) -> None:
    page, http = console.page, console.http
    admin = bearer("operator", "admin")
    await a_mug_to_ship(http)
    await sign_in(console)
    await page.click("[data-page=mall]")
    row = page.locator("tr", has_text="buyer")
    await expect(row).to_contain_text("Completed")
    await expect(row).to_contain_text("To ship")  # the shipment
    await expect(row).to_contain_text("1 Road, Shanghai")
    await row.locator("button").click()
    await expect(page.locator("tr", has_text="buyer")).to_contain_text("Shipped")
    stock = page.locator("tr", has_text="Mug").first
    await expect(stock).to_contain_text("2")
    # The health page names the latest expiry run.
    run = await http.post("/v1/admin/expiry-runs", json={}, headers=admin)
    assert run.is_success, run.text
    await page.click("[data-page=health]")
    last_run = page.locator("section", has_text="Last expiry run")
    await expect(last_run.locator("tbody tr")).to_have_count(1)


async def test_a_webhook_subscription_and_its_delivery_log(console: Console) -> None:
    page, http, receiver = console.page, console.http, console.receiver
    admin = bearer("operator", "admin")

    async def credit(member: str, points: int) -> None:
        reply = await http.post(
            f"/v1/admin/members/{member}/adjustments",
            json={"points": points, "note": "webhook test"},
            headers=admin,
        )
        assert reply.is_success, reply.text

    await sign_in(console)
    await page.click("#nav [data-page=webhooks]")
    # The service's validation comes back to the form.
    await page.fill("input[name=url]", receiver.url)
    await page.fill("input[name=event_types]", "points.credited, points.nope")
    await page.click("button[name=save]")
    await expect(page.locator("[role=alert]").first).to_contain_text("event_types[1]")
    await page.fill("input[name=event_types]", "points.credited")
    await page.click("button[name=save]")
    secret = (await page.locator("#secret").inner_text()).strip()
    assert secret.startswith("whsec_")

    # A credit is delivered, signed with the secret the page showed.
    await credit("hook-member", 7)
    for _ in range(100):
        if receiver.requests:
            break
        await page.wait_for_timeout(100)
    first = receiver.requests[0]
    event = Webhook(secret).verify(first.body, first.headers)
    assert (event["type"], event["member_id"]) == ("points.credited", "hook-member")

    await page.click("tr:has-text('points.credited') a")
    delivered = page.locator("#deliveries tbody tr").first
    await expect(delivered).to_contain_text("Delivered")
    await expect(delivered).to_contain_text("200")
    await expect(delivered).to_contain_text("hook-member")

    # The receiver fails: one retry, then the service gives up and disables the subscription;
    # the health page tells the operator.
    receiver.status = 500
    await credit("hook-member", 3)
    await page.click("#nav [data-page=health]")
    gave_up = page.locator("section", has_text="Webhooks the service disabled")
    for _ in range(100):
        if await gave_up.locator("tbody tr").count():
            break
        await page.wait_for_timeout(100)
        await page.click("#nav [data-page=webhooks]")
        await page.click("#nav [data-page=health]")
    await expect(gave_up.locator("tbody tr")).to_contain_text("after repeated failed deliveries")

    # Enable it from the list, and send the failed delivery again from the log.
    receiver.status = 200
    await page.click("#nav [data-page=webhooks]")
    await page.click("button[name=toggle]")
    await expect(page.locator("td", has_text="Enabled")).to_be_visible()
    await page.click("tbody a")
    await page.select_option("select[name=status]", "FAILED")
    failed = page.locator("#deliveries tbody tr")
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text("500")
    before = len(receiver.requests)
    await failed.locator("button[name=redeliver]").click()
    for _ in range(100):
        if len(receiver.requests) > before:
            break
        await page.wait_for_timeout(100)
    again = Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    assert again["data"]["amount"] == 3

    # Replay the last day: both credits are queued again.
    await page.click("button[name=replay]")
    await expect(page.locator("#replayed")).to_have_text("Deliveries queued: 2")

    # A rotated secret is shown once; the old one keeps signing until the time shown.
    await page.click("#nav [data-page=webhooks]")
    await page.click("button[name=rotate]")
    rotated = (await page.locator("#secret").inner_text()).strip()
    assert rotated.startswith("whsec_") and rotated != secret
    await expect(page.locator("tbody tr").first).not_to_contain_text("—")

    await page.select_option("#language", "zh-CN")
    await expect(page.locator("#nav [data-page=webhooks]")).to_have_text("Webhook")
    await expect(page.locator("button[name=rotate]")).to_have_text("轮换密钥")


async def test_a_double_click_changes_once(console: Console) -> None:
    """Every changing button, double-clicked: it is disabled while its request is in flight,
    and a change sent again (a retry) carries the same Idempotency-Key, so each applies once."""
    page, http = console.page, console.http
    admin = bearer("operator", "admin")
    sent: list[tuple[str, str, str, str]] = []

    def record(request: Request) -> None:
        if request.method != "GET" and "/v1/" in request.url:
            key = request.headers.get("idempotency-key", "")
            sent.append((request.method, request.url, request.post_data or "", key))

    page.on("request", record)
    rule = {"kind": "ACTION", "event_type": "COMMENT", "enabled": False, "action": {"points": 1}}
    assert (await http.put("/v1/admin/rules/twice", json=rule, headers=admin)).is_success
    await a_mug_to_ship(http)
    await sign_in(console)

    await page.goto(f"{console.url}/console#/config/rules")
    await page.locator("tr", has_text="Comment").locator("button", has_text="Enable").dblclick()
    await expect(page.locator("tr", has_text="Comment")).to_contain_text("Disable")
    rules = (await http.get("/v1/admin/rules", headers=admin)).json()["rules"]
    [twice] = [r for r in rules if r["rule_id"] == "twice"]
    assert (twice["enabled"], twice["version"]) == (True, 2)

    await page.goto(f"{console.url}/console#/member/buyer")
    await page.fill("input[name=points]", "5")
    await page.fill("input[name=note]", "double-clicked goodwill")
    await page.dblclick("button[name=adjust]")
    await expect(page.locator("td", has_text="double-clicked goodwill")).to_have_count(1)
    history = (await http.get("/v1/admin/members/buyer/history", headers=admin)).json()
    notes = [t for t in history["transfers"] if "double-clicked" in json.dumps(t)]
    assert len(notes) == 1, history
    await page.dblclick("button[name=blacklist]")
    await expect(page.locator("button[name=blacklist]")).to_have_text("Remove from blacklist")

    await page.click("[data-page=mall]")
    await page.locator("tr", has_text="buyer").locator("button").dblclick()
    await expect(page.locator("tr", has_text="buyer")).to_contain_text("Shipped")
    listed = (await http.get("/v1/admin/redemptions", headers=admin)).json()["redemptions"]
    assert [r["shipment_status"] for r in listed if r["user_id"] == "buyer"] == ["SHIPPED"]

    await page.click("[data-page=webhooks]")
    await page.fill("input[name=url]", f"{console.receiver.url}/twice")
    await page.dblclick("button[name=save]")
    await expect(page.locator("td", has_text="/twice")).to_have_count(1)
    await page.locator("tr", has_text="/twice").locator("button[name=rotate]").dblclick()
    await expect(page.locator("td", has_text="/twice")).to_have_count(1)
    hooks = (await http.get("/v1/admin/webhooks/subscriptions", headers=admin)).json()
    assert [s["url"] for s in hooks["subscriptions"]].count(f"{console.receiver.url}/twice") == 1

    keys: dict[tuple[str, str, str], set[str]] = {}
    for method, url, body, key in sent:
        assert key, (method, url)
        keys.setdefault((method, url, body), set()).add(key)
    assert len(keys) >= 6 and all(len(k) == 1 for k in keys.values()), keys
