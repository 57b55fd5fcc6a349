"""A loyalty program run through the HTTP API alone (no gRPC call, no SQL in the test): an
operator configures it, members earn and spend, and the numbers come out as configured."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from services.webhooks.server import SPEC as WEBHOOKS
from tests.support.gateway_calls import (
    bearer,
    gateway_env,
    operator_keys,
    send_request_examples,
)
from tests.support.hosts import running, serving_gateway

ADMIN = bearer("operator", "admin")
BACKEND = bearer("app-backend", "events:write")


@pytest.fixture
async def http(private_database: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(LEDGER, private_database) as ledger:
        env = {"LEDGER_ADDR": f"127.0.0.1:{ledger.port}", "RULES_SETTLE_SECONDS": "0.2"}
        async with running(RULES, private_database, env) as rules:
            env["RULES_ADDR"] = f"127.0.0.1:{rules.port}"
            async with (
                running(MALL, private_database, env) as mall,
                running(WEBHOOKS, private_database) as webhooks,
            ):
                hooks = {"request": [operator_keys]}
                ports = (ledger.port, rules.port, mall.port, webhooks.port)
                async with (
                    serving_gateway(gateway_env(*ports)) as url,
                    httpx.AsyncClient(base_url=url, timeout=20, event_hooks=hooks) as client,
                ):
                    yield client


async def ok(response: Any) -> dict[str, Any]:
    reply: httpx.Response = await response
    assert reply.is_success, reply.text
    found: dict[str, Any] = reply.json() if reply.content else {}
    return found


async def event(http: httpx.AsyncClient, user: str, kind: str, **fields: Any) -> dict[str, Any]:
    headers = {**BACKEND, "Idempotency-Key": uuid.uuid4().hex}
    return await ok(
        http.post("/v1/events", json={"user_id": user, "type": kind, **fields}, headers=headers)
    )


def days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days, minutes=5)).isoformat()


async def available(http: httpx.AsyncClient, user: str) -> int:
    wallet = await ok(http.get("/v1/me/wallet", headers=bearer(user)))
    points: int = wallet["points"]["available"]
    return points


async def configure(http: httpx.AsyncClient) -> None:
    rules: dict[str, dict[str, Any]] = {
        "welcome": {"kind": "TASK", "event_type": "REGISTER", "task": {"points": 100}},
        "checkin": {
            "kind": "CHECK_IN",
            "event_type": "CHECK_IN",
            "check_in": {"streak_points": [5, 5, 10, 10, 15, 15, 30]},
        },
        "like": {
            "kind": "ACTION",
            "event_type": "LIKE",
            "action": {"points": 1},
            "daily_cap": 5,
            "cap_group": "activity",
        },
        "share": {
            "kind": "ACTION",
            "event_type": "SHARE",
            "action": {"points": 5},
            "cap_group": "activity",
        },
        "purchase": {
            "kind": "PURCHASE",
            "event_type": "PURCHASE",
            "purchase": {
                "points": 10,
                "per_amount_minor": 5000,
                "currency": "CNY",
                "pending_days": 3,
            },
        },
        "lesson": {
            "kind": "TASK",
            "event_type": "LESSON_COMPLETED",
            "task": {"points": 50, "per_item": True},
        },
    }
    for rule_id, rule in rules.items():
        await ok(
            http.put(f"/v1/admin/rules/{rule_id}", json={**rule, "enabled": True}, headers=ADMIN)
        )
    await ok(http.put("/v1/admin/cap-groups/activity", json={"daily_cap": 20}, headers=ADMIN))
    coupon = {
        "type": "COUPON",
        "title": "20 yuan off",
        "points_price": 100,
        "stock": 100,
        "enabled": True,
        "coupon_value": {"amount_minor": 2000, "currency": "CNY"},
    }
    await ok(http.put("/v1/admin/items/c20", json=coupon, headers=ADMIN))
    lottery = {
        "title": "Lucky",
        "points_per_draw": 10,
        "enabled": True,
        "prizes": [{"prize_id": "big", "kind": "POINTS", "weight": 1, "points": 500, "stock": 1}],
    }
    await ok(http.put("/v1/admin/lotteries/lucky", json=lottery, headers=ADMIN))


@pytest.mark.slow
async def test_a_program_runs_end_to_end_over_http(http: httpx.AsyncClient) -> None:
    await configure(http)
    run = uuid.uuid4().hex[:8]
    alice, bob, mallory = f"alice-{run}", f"bob-{run}", f"mallory-{run}"

    # New-user bonus, once.
    assert (await event(http, alice, "REGISTER"))["total_points"] == 100
    assert (await event(http, alice, "REGISTER"))["total_points"] == 0

    # A 7-day check-in streak (5, 5, 10, 10, 15, 15, 30), and its reset after a missed day.
    streak = [
        (await event(http, bob, "CHECK_IN", occurred_at=days_ago(d)))["total_points"]
        for d in range(6, -1, -1)
    ]
    assert streak == [5, 5, 10, 10, 15, 15, 30]
    carol = f"carol-{run}"
    await event(http, carol, "CHECK_IN", occurred_at=days_ago(3))
    assert (await event(http, carol, "CHECK_IN", occurred_at=days_ago(1)))["total_points"] == 5

    # Likes capped at 5 a day; likes and shares together at 20 a day.
    likes = [(await event(http, alice, "LIKE"))["total_points"] for _ in range(7)]
    assert likes == [1, 1, 1, 1, 1, 0, 0]
    shares = [(await event(http, alice, "SHARE"))["total_points"] for _ in range(4)]
    assert shares == [5, 5, 5, 0]

    # Every full 50 yuan earns 10 points, pending 3 days; a refund takes them back.
    early = await event(
        http,
        bob,
        "PURCHASE",
        amount_minor=10_000,
        currency="CNY",
        order_id=f"o1-{run}",
        occurred_at=days_ago(4),
    )
    assert early["total_points"] == 20  # matured already: bought 4 days ago
    fresh = await event(
        http, bob, "PURCHASE", amount_minor=14_999, currency="CNY", order_id=f"o2-{run}"
    )
    assert fresh["total_points"] == 20 and fresh["awards"][0]["pending"] is True
    wallet = await ok(http.get("/v1/me/wallet", headers=bearer(bob)))
    assert (wallet["points"]["available"], wallet["points"]["pending"]) == (90 + 20, 20)
    refund = await event(http, bob, "REFUND", order_id=f"o1-{run}")
    assert refund["reversed_points"] == 20
    assert await available(http, bob) == 90

    # 50 points per lesson, once per lesson.
    assert (await event(http, alice, "LESSON_COMPLETED", item_id="l-1"))["total_points"] == 50
    assert (await event(http, alice, "LESSON_COMPLETED", item_id="l-1"))["total_points"] == 0
    assert await available(http, alice) == 100 + 5 + 15 + 50

    # 100 points buy a 20-yuan coupon, which a merchant validates and uses exactly once.
    redeemed = await ok(
        http.post(
            "/v1/me/redemptions",
            json={"item_id": "c20"},
            headers={**bearer(alice), "Idempotency-Key": f"r-{run}"},
        )
    )
    order = {
        "user_id": alice,
        "code": redeemed["code"],
        "order_id": f"shop-{run}",
        "order_amount": {"amount_minor": 10_000, "currency": "CNY"},
    }
    checked = await ok(http.post("/v1/coupons/validate", json=order, headers=BACKEND))
    assert (checked["valid"], checked["discount_minor"]) == (True, 2000)
    await ok(
        http.post("/v1/coupons/use", json=order, headers={**BACKEND, "Idempotency-Key": f"u-{run}"})
    )
    again = await http.post(
        "/v1/coupons/use",
        json={**order, "order_id": f"shop2-{run}"},
        headers={**BACKEND, "Idempotency-Key": f"u2-{run}"},
    )
    assert (again.status_code, again.json()["reason"]) == (409, "COUPON_ALREADY_USED")

    # Points as cash: 100 points = 1 yuan, at most 50 % of the order, in steps of 100.
    gift = await ok(
        http.post(
            f"/v1/admin/members/{alice}/adjustments",
            json={"points": 6000, "note": "launch gift"},
            headers=ADMIN,
        )
    )
    # Above the limit: a second person approves it (see test_gateway_approvals.py).
    decide = f"/v1/admin/approvals/{gift['approval_id']}/approve"
    approved = await ok(
        http.post(decide, headers={**bearer("cfo", "admin"), "Idempotency-Key": "gift"})
    )
    assert (approved["status"], approved["result_status"]) == ("DONE", 200)
    quote = await ok(
        http.post(
            "/v1/checkout/quote",
            json={"order_amount": {"amount_minor": 5000, "currency": "CNY"}},
            headers=bearer(alice),
        )
    )
    assert quote["max_points"] == 2500
    too_much = await http.post(
        "/v1/checkout/apply",
        json={
            "order_id": f"pay-{run}",
            "order_amount": {"amount_minor": 5000, "currency": "CNY"},
            "points": 2550,
        },
        headers={**bearer(alice), "Idempotency-Key": f"a-{run}"},
    )
    assert too_much.json()["reason"] == "DEDUCTION_EXCEEDS_LIMIT"

    # A segment: members with at least 5000 available points.
    segment = await ok(
        http.get("/v1/admin/segments", params={"min_available": 5000}, headers=ADMIN)
    )
    members = {m["user_id"] for m in segment["members"]}
    assert alice in members and bob not in members

    # A stock-1 lottery prize is won once.
    wins = []
    for n in range(3):
        draw = await ok(
            http.post(
                "/v1/me/lotteries/lucky/draws",
                headers={**bearer(alice), "Idempotency-Key": f"d{n}-{run}"},
            )
        )
        wins.append(draw["points_won"])
    assert wins == [500, 0, 0]

    # A blacklisted member can neither earn nor spend anywhere.
    await event(http, mallory, "REGISTER")
    await ok(
        http.post("/v1/admin/blacklist", json={"kind": "USER", "value": mallory}, headers=ADMIN)
    )
    assert (await event(http, mallory, "LIKE"))["decision"] == "DENY"
    me = bearer(mallory)
    refusals = [
        await http.post(
            "/v1/me/redemptions", json={"item_id": "c20"}, headers={**me, "Idempotency-Key": "m1"}
        ),
        await http.post("/v1/me/lotteries/lucky/draws", headers={**me, "Idempotency-Key": "m2"}),
        await http.post(
            "/v1/checkout/apply",
            json={
                "order_id": "m",
                "order_amount": {"amount_minor": 100_000, "currency": "CNY"},
                "points": 100,
            },
            headers={**me, "Idempotency-Key": "m3"},
        ),
    ]
    assert [r.json()["reason"] for r in refusals] == ["RISK_DENIED"] * 3
    assert await available(http, mallory) == 100

    audit = await ok(http.get("/v1/admin/audit", headers=ADMIN))
    assert audit["ok"] is True


async def test_the_documented_request_examples_are_accepted(http: httpx.AsyncClient) -> None:
    await send_request_examples(http, bearer("operator", "admin", "events:write"))


async def test_purchases_expiry_and_a_campaign_budget_as_the_seed_states(
    http: httpx.AsyncClient,
) -> None:
    run = uuid.uuid4().hex[:8]
    erin, frank = f"erin-{run}", f"frank-{run}"
    rules: dict[str, dict[str, Any]] = {
        # 1 point per yuan, pending 3 days (the return window), valid one year.
        "purchase": {
            "kind": "PURCHASE",
            "event_type": "PURCHASE",
            "purchase": {
                "points": 1,
                "per_amount_minor": 100,
                "currency": "CNY",
                "pending_days": 3,
            },
            "expiry_days": 365,
        },
        "profile": {
            "kind": "TASK",
            "event_type": "PROFILE_COMPLETED",
            "task": {"points": 20},
            "expiry_days": 30,
        },
        "comment": {"kind": "ACTION", "event_type": "COMMENT", "action": {"points": 5}},
    }
    for rule_id, rule in rules.items():
        await ok(
            http.put(f"/v1/admin/rules/{rule_id}", json={**rule, "enabled": True}, headers=ADMIN)
        )

    # 100 yuan -> 100 pending points; matured once the return window has passed; a refund
    # reverses the pending ones.
    fresh = await event(
        http, erin, "PURCHASE", amount_minor=10_000, currency="CNY", order_id=f"new-{run}"
    )
    assert (fresh["total_points"], fresh["awards"][0]["pending"]) == (100, True)
    old = await event(
        http,
        erin,
        "PURCHASE",
        amount_minor=10_000,
        currency="CNY",
        order_id=f"old-{run}",
        occurred_at=days_ago(4),
    )
    assert old["total_points"] == 100
    assert datetime.fromisoformat(old["awards"][0]["matures_at"]) < datetime.now(UTC)
    wallet = await ok(http.get("/v1/me/wallet", headers=bearer(erin)))
    assert (wallet["points"]["available"], wallet["points"]["pending"]) == (100, 100)
    assert (await event(http, erin, "REFUND", order_id=f"new-{run}"))["reversed_points"] == 100
    wallet = await ok(http.get("/v1/me/wallet", headers=bearer(erin)))
    assert (wallet["points"]["available"], wallet["points"]["pending"]) == (100, 0)

    # Purchase points expire a year after they are credited: not "expiring soon" today (the
    # wallet's window is a month), listed by the day they go in a year.
    assert wallet["expiring"] == []
    in_a_year = (datetime.now(UTC) + timedelta(days=365)).date()
    member = f"/v1/admin/members/{erin}"
    year = await ok(http.get(member, params={"expiring_within_days": 366}, headers=ADMIN))
    [lot] = year["expiring"]
    assert lot["amount"] == 100
    assert abs((datetime.fromisoformat(lot["date"]).date() - in_a_year).days) <= 1
    early = await ok(http.get(member, params={"expiring_within_days": 363}, headers=ADMIN))
    assert early["expiring"] == []
    # Points with a month to live are "expiring soon" in the wallet from the day they come.
    await event(http, erin, "PROFILE_COMPLETED")
    wallet = await ok(http.get("/v1/me/wallet", headers=bearer(erin)))
    assert [e["amount"] for e in wallet["expiring"]] == [20]

    # A campaign doubles comments out of a 12-point budget: the bonus stops exactly there.
    await ok(
        http.put(
            "/v1/admin/budgets/launch",
            json={"points_limit": 12, "period": "TOTAL", "over_budget": "CUT"},
            headers=ADMIN,
        )
    )
    campaign = {
        "event_types": ["COMMENT"],
        "multiplier_percent": 200,
        "audience": "ALL",
        "start_at": days_ago(1),
        "end_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "budget_id": "launch",
        "enabled": True,
    }
    await ok(http.put("/v1/admin/campaigns/double", json=campaign, headers=ADMIN))
    comments = [await event(http, frank, "COMMENT") for _ in range(5)]
    assert [c["total_points"] for c in comments] == [10, 10, 7, 5, 5]
    assert sum(c["awards"][0]["campaign_points"] for c in comments) == 12
    budgets = await ok(http.get("/v1/admin/budgets", headers=ADMIN))
    [launch] = [b for b in budgets["budgets"] if b["budget"]["budget_id"] == "launch"]
    assert launch["used_points"] == 12
    assert await available(http, frank) == 37
