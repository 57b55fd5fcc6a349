"""The Experiments page: an operator drafts an experiment from the template, starts it, reads
its live results with an interval chart per metric, a member's award names its arm, an
operator cannot promote, and an admin promotes the treatment to a new rule version."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from loyalty.rules.v1 import rules_pb2 as pb
from services.rules.experiment_design import arm_for
from tests.support.console import ADMIN, Console, console_suite, events, sign_in, sign_in_as


@pytest.fixture
async def console(private_database: str, request: pytest.FixtureRequest) -> AsyncIterator[Console]:
    async with console_suite(private_database, request) as running:
        yield running


async def a_like_rule(console: Console) -> None:
    rule = {"kind": "ACTION", "event_type": "LIKE", "action": {"points": 1}, "enabled": True}
    saved = await console.http.put("/v1/admin/rules/like", json=rule, headers=ADMIN)
    assert saved.is_success, saved.text


async def test_an_experiment_from_draft_to_promotion(console: Console) -> None:
    page = console.page
    await a_like_rule(console)
    await sign_in(console)
    await page.goto(f"{console.url}/console#/experiments")
    await page.click("button[name=new-experiment]")
    await page.fill("input[name=experiment_id]", "like-x2")
    await page.click("button[name=save-experiment]")
    await expect(page.locator("[data-panel=experiment]")).to_contain_text("Draft")
    await page.click("button[name=start]")
    await expect(page.locator("[data-panel=experiment]")).to_contain_text("Running")

    members = [f"liker-{i}" for i in range(12)]
    for member in members:
        await events(console.http, member, "LIKE", 2)
    await page.goto(f"{console.url}/console#/experiments")  # and back: the page again
    await page.goto(f"{console.url}/console#/experiments/like-x2")
    panel = page.locator("[data-panel=experiment]")
    await expect(panel.locator("[data-metric]")).to_have_count(6)
    await expect(panel.locator("[data-metric=EVENTS] svg.chart circle")).to_have_count(2)
    await expect(panel.locator("#verdict")).to_contain_text("Too early to decide")
    started = (await console.http.get("/v1/admin/experiments/like-x2", headers=ADMIN)).json()
    assert sum(a["members"] for a in started["results"]["arms"]) == len(members)

    experiment = pb.Experiment(experiment_id="like-x2")
    for arm in started["experiment"]["arms"]:
        experiment.arms.add(arm_id=arm["arm_id"], share_bp=arm["share_bp"])
    treated = next(m for m in members if arm_for(experiment, m) == "b")
    await page.goto(f"{console.url}/console#/member/{treated}")
    await expect(page.locator(".award").first).to_contain_text("like: 2")
    await expect(page.locator(".award").first).to_contain_text("arm b of like-x2")

    await sign_in_as(console, "operator")
    await page.goto(f"{console.url}/console#/experiments/like-x2")
    await expect(page.locator("button[name=conclude]")).to_be_visible()
    await expect(page.locator("button[name=promote-b]")).to_be_hidden()

    await sign_in_as(console, "admin")
    await page.goto(f"{console.url}/console#/experiments/like-x2")
    console.accept = False
    await page.click("button[name=promote-b]")
    await expect(page.locator("[data-panel=experiment]")).to_contain_text("Running")
    console.accept = True
    await page.click("button[name=promote-b]")
    await expect(page.locator("[data-panel=experiment]")).to_contain_text("Concluded")
    assert any("Promote this arm" in asked for asked in console.asked)
    rules = (await console.http.get("/v1/admin/rules", headers=ADMIN)).json()["rules"]
    like = next(r for r in rules if r["rule_id"] == "like")
    assert like["action"]["points"] == 2 and like["version"] == 2
