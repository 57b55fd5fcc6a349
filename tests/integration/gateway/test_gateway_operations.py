"""Operator and merchant capabilities over HTTP alone: coupons at checkout, segments, manual
adjustments with a reason, expiry runs, online time and invitations."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from services.common.server import ServiceHost
from tests.support.faulty_peer import FaultyPeer
from tests.support.gateway_calls import assert_error, bearer, gateway_env
from tests.support.hosts import serving_gateway
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import credit

ADMIN = bearer("operator", "admin")
ORDERS = bearer("order-system", "events:write")


async def test_a_coupon_is_validated_then_used_exactly_once(
    http: httpx.AsyncClient,
    ledger: LedgerStub,
    user: str,
) -> None:
    item_id = f"c20-{user}"
    item = {
        "type": "COUPON",
        "title": "20 yuan off",
        "points_price": 100,
        "stock": 5,
        "enabled": True,
        "coupon_value": {"amount_minor": 2000, "currency": "CNY"},
        "coupon_min_spend": {"amount_minor": 5000, "currency": "CNY"},
    }
    assert (await http.put(f"/v1/admin/items/{item_id}", headers=ADMIN, json=item)).is_success
    await credit(ledger, user, 100)
    redeemed = await http.post(
        "/v1/me/redemptions",
        json={"item_id": item_id},
        headers={**bearer(user), "Idempotency-Key": f"r-{user}"},
    )
    code = redeemed.json()["code"]
    order = {"user_id": user, "code": code, "order_id": "o-1"}
    small = await http.post(
        "/v1/coupons/validate",
        json={**order, "order_amount": {"amount_minor": 3000, "currency": "CNY"}},
        headers=ORDERS,
    )
    assert small.status_code == 200, small.text
    assert (small.json()["valid"], small.json()["reason"]) == (False, "BELOW_MIN_SPEND")
    big = {**order, "order_amount": {"amount_minor": 10_000, "currency": "CNY"}}
    checked = (await http.post("/v1/coupons/validate", json=big, headers=ORDERS)).json()
    assert (checked["valid"], checked["discount_minor"]) == (True, 2000)
    used = await http.post(
        "/v1/coupons/use", json=big, headers={**ORDERS, "Idempotency-Key": f"use-{user}"}
    )
    assert used.status_code == 200, used.text
    assert (used.json()["discount_minor"], used.json()["coupon"]["state"]) == (2000, "USED")
    other = await http.post(
        "/v1/coupons/use",
        json={**big, "order_id": "o-2"},
        headers={**ORDERS, "Idempotency-Key": f"use-2-{user}"},
    )
    assert_error(other, 409, "COUPON_ALREADY_USED")
    members_cannot = await http.post("/v1/coupons/validate", json=big, headers=bearer(user))
    assert_error(members_cannot, 403, "MISSING_SCOPE")


async def test_segments_adjustments_and_expiry_runs(
    http: httpx.AsyncClient,
    ledger: LedgerStub,
    user: str,
) -> None:
    rich, poor = f"{user}-rich", f"{user}-poor"
    await credit(ledger, rich, 6000)
    await credit(ledger, poor, 10)
    found: set[str] = set()
    token = ""
    while True:
        page = await http.get(
            "/v1/admin/segments",
            params={"min_available": 5000, "page_size": 50, "page_token": token},
            headers=ADMIN,
        )
        assert page.status_code == 200, page.text
        found |= {m["user_id"] for m in page.json()["members"]}
        assert all(m["available"] >= 5000 for m in page.json()["members"])
        token = page.json()["next_page_token"]
        if not token:
            break
    assert rich in found and poor not in found

    for points in (100, -30):
        adjusted = await http.post(
            f"/v1/admin/members/{poor}/adjustments",
            json={"points": points, "note": "goodwill after a support call"},
            headers={**ADMIN, "Idempotency-Key": f"adj-{points}-{user}"},
        )
        assert adjusted.status_code == 200, adjusted.text
        assert adjusted.json()["operator"] == "operator"
    assert adjusted.json()["balance"]["available"] == 80
    zero = await http.post(
        f"/v1/admin/members/{poor}/adjustments",
        json={"points": 0, "note": "nothing"},
        headers={**ADMIN, "Idempotency-Key": f"adj-0-{user}"},
    )
    assert_error(zero, 400, "INVALID_ARGUMENT")
    history = (await http.get("/v1/me/history", headers=bearer(poor))).json()
    assert {t["kind"] for t in history["transfers"]} >= {"ADJUSTMENT"}
    granted = next(t for t in history["transfers"] if t["amount"] == 100)
    assert granted["expires_at"] is not None  # a credit says when its points expire
    taken = next(t for t in history["transfers"] if t["amount"] == -30)
    assert taken["expires_at"] is None

    await credit(ledger, poor, 50, expires_in_seconds=0.5)
    detail = (await http.get(f"/v1/admin/members/{poor}", headers=ADMIN)).json()
    assert sum(e["amount"] for e in detail["expiring"]) >= 50
    await asyncio.sleep(0.7)
    run = await http.post(
        "/v1/admin/expiry-runs", json={}, headers={**ADMIN, "Idempotency-Key": f"exp-{user}"}
    )
    assert run.status_code == 200, run.text
    assert run.json()["points_expired"] >= 50
    after = (await http.get(f"/v1/admin/members/{poor}", headers=ADMIN)).json()
    assert after["points"]["lifetime_expired"] == 50


async def test_online_time_and_invitations_are_accepted(
    http: httpx.AsyncClient,
    user: str,
) -> None:
    online = await http.post(
        "/v1/events",
        json={"user_id": user, "type": "ONLINE_TIME", "minutes": 30},
        headers={**ORDERS, "Idempotency-Key": f"online-{user}"},
    )
    assert online.status_code == 200, online.text
    without = await http.post(
        "/v1/events",
        json={"user_id": user, "type": "ONLINE_TIME"},
        headers={**ORDERS, "Idempotency-Key": f"online-none-{user}"},
    )
    problem = assert_error(without, 400, "INVALID_ARGUMENT")
    assert [v["field"] for v in problem["violations"]] == ["event.minutes"]
    invited = await http.post(
        "/v1/events",
        json={"user_id": f"{user}-new", "type": "REGISTER", "referrer_id": user},
        headers={**ORDERS, "Idempotency-Key": f"reg-{user}"},
    )
    assert invited.status_code == 200, invited.text
    assert invited.json()["referral"] == "RECORDED"


async def test_operators_changes_replay_by_their_idempotency_key(
    http: httpx.AsyncClient, user: str
) -> None:
    """Rotating a lottery's seed is not idempotent by itself: a retried request must not
    rotate twice."""
    lottery = {"title": "Keys", "points_per_draw": 1, "enabled": True, "no_prize_weight": 1}
    assert (
        await http.put(f"/v1/admin/lotteries/k-{user[-6:]}", json=lottery, headers=ADMIN)
    ).is_success
    headers = {**ADMIN, "Idempotency-Key": f"rotate-{user}"}
    url = f"/v1/admin/lotteries/k-{user[-6:]}/seed-rotations"
    first = await http.post(url, headers=headers)
    again = await http.post(url, headers=headers)
    assert first.status_code == 200, first.text
    assert again.json() == first.json()  # one rotation, answered twice
    other = await http.post(url, headers={**ADMIN, "Idempotency-Key": f"rotate-2-{user}"})
    assert other.json()["revealed"]["seed_id"] == first.json()["revealed"]["seed_id"] + 1
    # Each service keeps its own keys: the same key on another mall change is refused.
    reused = await http.put(f"/v1/admin/lotteries/k2-{user[-6:]}", json=lottery, headers=headers)
    assert_error(reused, 422, "IDEMPOTENCY_KEY_REUSED")
    missing = await http.put(
        f"/v1/admin/cap-groups/k-{user[-6:]}",
        json={"daily_cap": 5},
        headers={**ADMIN, "Idempotency-Key": ""},
    )
    assert_error(missing, 400, "MISSING_IDEMPOTENCY_KEY")


async def test_a_rules_versions_name_the_operator_who_saved_them(
    http: httpx.AsyncClient, user: str
) -> None:
    rule_id = f"v-{user[-8:]}"
    for points in (1, 2):
        rule = {
            "kind": "ACTION",
            "event_type": "SHARE",
            "enabled": False,  # program-wide: this rule must award nothing to other tests
            "action": {"points": points},
        }
        headers = {**ADMIN, "Idempotency-Key": f"{rule_id}-{points}"}
        assert (await http.put(f"/v1/admin/rules/{rule_id}", json=rule, headers=headers)).is_success
    reply = await http.get(f"/v1/admin/rules/{rule_id}/versions", headers=ADMIN)
    assert reply.status_code == 200, reply.text
    assert [
        (v["version"], v["actor"], v["rule"]["action"]["points"]) for v in reply.json()["versions"]
    ] == [(2, "operator", 2), (1, "operator", 1)]
    unknown = await http.get(f"/v1/admin/widgets/{rule_id}/versions", headers=ADMIN)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")


async def test_an_operators_write_has_a_deadline_that_fits_it(
    ledger_host: ServiceHost,
    rules_host: ServiceHost,
    mall_host: ServiceHost,
    webhooks_host: ServiceHost,
) -> None:
    """On a busy machine a rule save can take longer than a member's call may (1 s here): the
    operator's write has its own deadline and is saved, while a read that slow is a 504."""
    proxy = FaultyPeer(f"127.0.0.1:{rules_host.port}", "rules")
    await proxy.start()
    proxy.delays = {"UpsertCapGroup": 1.5, "ListCapGroups": 1.5}
    env = gateway_env(ledger_host.port, proxy.port, mall_host.port, webhooks_host.port)
    try:
        async with (
            serving_gateway(env) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            saved = await client.put(
                "/v1/admin/cap-groups/slow-save",
                json={"daily_cap": 7},
                headers={**ADMIN, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert saved.status_code == 200, saved.text
            assert_error(
                await client.get("/v1/admin/cap-groups", headers=ADMIN), 504, "DEADLINE_EXCEEDED"
            )
    finally:
        await proxy.stop()
