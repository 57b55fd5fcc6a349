"""The gateway over HTTP against real ledger and rules servers: auth, wallet, degraded
backends, idempotent check-in, error mapping, live updates and admin routes."""

from __future__ import annotations

import json
import time

import httpx
import jwt

from gateway.settings import DEV_SECRET
from loyalty.rules.v1 import rules_pb2 as rpb
from loyalty.rules.v1 import rules_pb2_grpc as rpb_grpc
from services.common.server import ServiceHost
from tests.support.gateway_calls import assert_error, bearer, gateway_env
from tests.support.hosts import free_port, serving_gateway
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import credit


async def test_authentication_and_scopes(http: httpx.AsyncClient, user: str) -> None:
    assert_error(await http.get("/v1/me/wallet"), 401, "MISSING_TOKEN")
    forged = jwt.encode({"sub": user, "exp": time.time() + 60}, "x" * 32, algorithm="HS256")
    assert_error(
        await http.get("/v1/me/wallet", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "INVALID_TOKEN",
    )
    expired = jwt.encode({"sub": user, "exp": time.time() - 60}, DEV_SECRET, algorithm="HS256")
    assert_error(
        await http.get("/v1/me/wallet", headers={"Authorization": f"Bearer {expired}"}),
        401,
        "TOKEN_EXPIRED",
    )
    assert_error(await http.get("/v1/admin/rules", headers=bearer(user)), 403, "MISSING_SCOPE")
    assert_error(
        await http.post(
            "/v1/events",
            headers={**bearer(user), "Idempotency-Key": "k"},
            json={"user_id": user, "type": "LIKE"},
        ),
        403,
        "MISSING_SCOPE",
    )
    assert (await http.get("/v1/admin/rules", headers=bearer(user, "admin"))).status_code == 200


async def test_wallet_aggregates_the_users_own_points(
    http: httpx.AsyncClient, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 120, expires_in_days=10)
    other = f"{user}-other"
    await credit(ledger, other, 999)
    reply = await http.get("/v1/me/wallet", headers=bearer(user))
    assert reply.status_code == 200, reply.text
    wallet = reply.json()
    assert wallet["user_id"] == user
    assert wallet["points"]["available"] == 120  # only the token's user, never another
    assert [e["amount"] for e in wallet["expiring"]] == [120]
    assert wallet["check_in"]["checked_in_today"] is False
    assert [t["amount"] for t in wallet["recent"]] == [120]
    assert wallet["redemptions"] == []
    assert wallet["tier"] is None  # no tiers configured
    assert {c["rule_id"]: c["remaining_today"] for c in wallet["caps_today"]}["like"] == 5
    assert wallet["degraded"] == []


async def test_wallet_follows_changes_made_past_this_gateway(
    http: httpx.AsyncClient,
    ledger: LedgerStub,
    rules: rpb_grpc.RulesServiceAsyncStub,
    user: str,
) -> None:
    """The rules' and mall's parts are reused while the ledger says the points stand still;
    a check-in recorded straight at the rules service moves the points, so it shows."""
    await credit(ledger, user, 10)
    for _ in range(2):  # the second one reuses the rules' and mall's parts
        wallet = (await http.get("/v1/me/wallet", headers=bearer(user))).json()
        assert wallet["check_in"]["checked_in_today"] is False
    event = rpb.Event(event_id=f"{user}-direct", user_id=user, type=rpb.EVENT_TYPE_CHECK_IN)
    await rules.RecordEvent(rpb.RecordEventRequest(event=event))
    wallet = (await http.get("/v1/me/wallet", headers=bearer(user))).json()
    assert wallet["check_in"]["checked_in_today"] is True
    assert wallet["check_in"]["streak"] == 1
    assert wallet["points"]["available"] == 15
    assert [t["amount"] for t in wallet["recent"]] == [5, 10]
    assert wallet["degraded"] == []


async def test_wallet_degrades_when_a_backend_is_down(
    ledger_host: ServiceHost,
    mall_host: ServiceHost,
    webhooks_host: ServiceHost,
    ledger: LedgerStub,
    user: str,
) -> None:
    await credit(ledger, user, 7)
    no_rules = free_port()
    env = gateway_env(ledger_host.port, no_rules, mall_host.port, webhooks_host.port)
    async with serving_gateway(env) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            reply = await client.get("/v1/me/wallet", headers=bearer(user))
            ready = await client.get("/readyz")
    assert reply.status_code == 200, reply.text
    wallet = reply.json()
    assert wallet["degraded"] == ["check_in", "tier", "caps_today"]
    # Still ready: the gateway serves (degraded) without rules, so it stays in rotation.
    assert ready.status_code == 200
    assert ready.json()["degraded"] == ["rules"]
    assert wallet["check_in"] is None
    assert wallet["points"]["available"] == 7


async def test_a_backend_down_is_503_without_internal_addresses(
    ledger_host: ServiceHost, mall_host: ServiceHost, webhooks_host: ServiceHost, user: str
) -> None:
    no_rules = free_port()
    env = gateway_env(ledger_host.port, no_rules, mall_host.port, webhooks_host.port)
    async with serving_gateway(env) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        reply = await client.get("/v1/me/events", headers=bearer(user))
    assert reply.status_code == 503, reply.text
    problem = reply.json()
    assert problem["reason"] == "UNAVAILABLE"
    assert "127.0.0.1" not in reply.text and str(no_rules) not in reply.text
    assert "retry" in problem["detail"]


async def test_check_in_is_idempotent_by_header(
    http: httpx.AsyncClient, ledger: LedgerStub, user: str
) -> None:
    assert_error(
        await http.post("/v1/me/check-in", headers=bearer(user)), 400, "MISSING_IDEMPOTENCY_KEY"
    )
    headers = {**bearer(user), "Idempotency-Key": f"checkin-{user}"}
    first = await http.post("/v1/me/check-in", headers=headers)
    again = await http.post("/v1/me/check-in", headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == again.json()
    assert first.json()["total_points"] == 5
    history = (await http.get("/v1/me/history", headers=bearer(user))).json()
    assert [t["amount"] for t in history["transfers"]] == [5]  # credited once
    explained = (await http.get("/v1/me/events", headers=bearer(user))).json()
    [checked_in] = explained["events"]
    assert checked_in["outcome"]["awards"][0]["streak_day"] == 1


async def test_backend_errors_map_to_http(http: httpx.AsyncClient, user: str) -> None:
    headers = {**bearer(user, "events:write"), "Idempotency-Key": f"e-{user}"}
    error = assert_error(
        await http.post("/v1/events", headers=headers, json={"user_id": user, "type": "PURCHASE"}),
        400,
        "INVALID_ARGUMENT",
    )
    fields = {v["field"] for v in error["violations"]}
    assert fields == {"event.amount", "event.order_id"}
    assert_error(
        await http.post("/v1/events", headers=headers, json={"type": "NOPE"}),
        400,
        "INVALID_ARGUMENT",
    )
    assert_error(
        await http.get("/v1/me/history?page_token=%21%21", headers=bearer(user)),
        400,
        "INVALID_ARGUMENT",
    )
    assert_error(
        await http.get("/v1/me/history?kind=BOGUS", headers=bearer(user)), 400, "INVALID_ARGUMENT"
    )
    assert_error(await http.get("/v1/nowhere", headers=bearer(user)), 404, "NOT_FOUND")


async def test_events_from_backends_award_points(http: httpx.AsyncClient, user: str) -> None:
    headers = {**bearer("shop-backend", "events:write"), "Idempotency-Key": f"order-{user}"}
    body = {
        "user_id": user,
        "type": "PURCHASE",
        "amount_minor": 10000,
        "currency": "CNY",
        "order_id": "o-9",
    }
    reply = await http.post("/v1/events", headers=headers, json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["total_points"] == 20
    assert reply.json()["awards"][0]["pending"] is True
    wallet = (await http.get("/v1/me/wallet", headers=bearer(user))).json()
    assert wallet["points"]["pending"] == 20


async def test_stream_relays_balance_changes(
    http: httpx.AsyncClient, ledger: LedgerStub, user: str
) -> None:
    async with http.stream("GET", "/v1/me/wallet/stream", headers=bearer(user)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        seen: list[dict[str, int]] = []
        keepalives = 0
        async for line in stream.aiter_lines():
            if line.startswith(": keepalive"):
                keepalives += 1
                if keepalives == 2:  # the idle stream stayed open: now change the balance
                    await credit(ledger, user, 33)
            elif line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if len(seen) == 2:
                    break
    assert [s["available"] for s in seen] == [0, 33]
    assert keepalives >= 2


async def test_admin_manages_rules_and_blacklist(http: httpx.AsyncClient, user: str) -> None:
    admin = bearer("operator", "admin")
    rule = {
        "kind": "ACTION",
        "event_type": "COMMENT",
        "enabled": True,
        "action": {"points": 2},
        "daily_cap": 10,
    }
    stored = await http.put("/v1/admin/rules/comment", headers=admin, json=rule)
    assert stored.status_code == 200, stored.text
    assert stored.json()["rule_id"] == "comment"
    listed = (await http.get("/v1/admin/rules", headers=admin)).json()["rules"]
    assert "comment" in {r["rule_id"] for r in listed}
    bad = await http.put("/v1/admin/rules/comment", headers=admin, json={"kind": "NOPE"})
    assert_error(bad, 400, "INVALID_ARGUMENT")
    added = await http.post(
        "/v1/admin/blacklist", headers=admin, json={"kind": "USER", "value": user, "reason": "test"}
    )
    assert added.status_code == 204
    removed = await http.delete(f"/v1/admin/blacklist/USER/{user}", headers=admin)
    assert removed.json() == {"removed": True}
    grouped = {**rule, "cap_group": "social"}
    assert (await http.put("/v1/admin/rules/comment", headers=admin, json=grouped)).is_success
    group = await http.put("/v1/admin/cap-groups/social", headers=admin, json={"daily_cap": 20})
    assert group.json() == {"name": "social", "daily_cap": 20}
    groups = (await http.get("/v1/admin/cap-groups", headers=admin)).json()["cap_groups"]
    social = next(g for g in groups if g["name"] == "social")
    assert social["daily_cap"] == 20 and "comment" in social["rule_ids"]
    report = (await http.get("/v1/admin/reports/ledger", headers=admin)).json()
    assert report["issued"] > 0
    issuance = (await http.get("/v1/admin/reports/issuance", headers=admin)).json()
    assert issuance["points_issued"] > 0


async def test_catalog_redeem_and_cancel(
    http: httpx.AsyncClient, ledger: LedgerStub, user: str
) -> None:
    admin = bearer("operator", "admin")
    item_id = f"coupon-{user}"
    item = {
        "type": "COUPON",
        "title": "5 yuan off",
        "points_price": 100,
        "stock": 2,
        "enabled": True,
        "coupon_value": {"amount_minor": 500, "currency": "CNY"},
    }
    stored = await http.put(f"/v1/admin/items/{item_id}", headers=admin, json=item)
    assert stored.status_code == 200, stored.text
    await credit(ledger, user, 150)
    me = bearer(user)
    affordable = (await http.get("/v1/catalog?affordable=true&page_size=200", headers=me)).json()
    assert item_id in {i["item_id"] for i in affordable["items"]}
    headers = {**me, "Idempotency-Key": f"redeem-{user}"}
    done = await http.post("/v1/me/redemptions", headers=headers, json={"item_id": item_id})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "COMPLETED" and len(done.json()["code"]) == 16
    again = await http.post("/v1/me/redemptions", headers=headers, json={"item_id": item_id})
    assert again.json() == done.json()
    broke = await http.post(
        "/v1/me/redemptions",
        json={"item_id": item_id},
        headers={**me, "Idempotency-Key": f"redeem-2-{user}"},
    )
    assert_error(broke, 422, "INSUFFICIENT_POINTS")
    wallet = (await http.get("/v1/me/wallet", headers=me)).json()
    assert wallet["points"]["available"] == 50
    assert [r["status"] for r in wallet["redemptions"]] == ["FAILED", "COMPLETED"]
    redemption_id = done.json()["redemption_id"]
    cancelled = await http.post(
        f"/v1/me/redemptions/{redemption_id}/cancel",
        headers={**me, "Idempotency-Key": f"cancel-{user}"},
    )
    assert cancelled.json()["status"] == "CANCELLED"
    assert (await http.get("/v1/me/wallet", headers=me)).json()["points"]["available"] == 150
    someone_else = await http.post(
        f"/v1/me/redemptions/{redemption_id}/cancel",
        headers={**bearer(f"{user}-x"), "Idempotency-Key": "c"},
    )
    assert_error(someone_else, 404, "REDEMPTION_NOT_FOUND")  # never another user's


async def test_checkout_with_points(http: httpx.AsyncClient, ledger: LedgerStub, user: str) -> None:
    await credit(ledger, user, 3000)
    me = bearer(user)
    order = {"amount_minor": 5000, "currency": "CNY"}
    quote = await http.post("/v1/checkout/quote", headers=me, json={"order_amount": order})
    assert quote.status_code == 200, quote.text
    assert quote.json()["max_points"] == 2500
    body = {"order_id": f"order-{user}", "order_amount": order, "points": 2500}
    applied = await http.post(
        "/v1/checkout/apply", json=body, headers={**me, "Idempotency-Key": f"apply-{user}"}
    )
    assert applied.json()["status"] == "APPLIED", applied.text
    confirmed = await http.post(
        "/v1/checkout/confirm",
        json={"order_id": f"order-{user}"},
        headers={**me, "Idempotency-Key": f"confirm-{user}"},
    )
    assert confirmed.json()["status"] == "CONFIRMED"
    refund = {
        "user_id": user,
        "order_id": f"order-{user}",
        "refund_amount": {"amount_minor": 2500, "currency": "CNY"},
    }
    assert_error(
        await http.post("/v1/checkout/refund", json=refund, headers={**me, "Idempotency-Key": "r"}),
        403,
        "MISSING_SCOPE",
    )
    refunded = await http.post(
        "/v1/checkout/refund",
        json=refund,
        headers={**bearer("orders", "events:write"), "Idempotency-Key": f"refund-{user}"},
    )
    assert refunded.json()["refunded_points"] == 1250
    wallet = (await http.get("/v1/me/wallet", headers=me)).json()
    assert wallet["points"]["available"] == 500 + 1250


async def test_lottery_draw_over_http(
    http: httpx.AsyncClient, ledger: LedgerStub, user: str
) -> None:
    admin = bearer("operator", "admin")
    lottery_id = f"spin-{user}"
    lottery = {
        "title": "Spin",
        "points_per_draw": 20,
        "no_prize_weight": 1,
        "enabled": True,
        "prizes": [
            {
                "prize_id": "ten",
                "kind": "POINTS",
                "weight": 1,
                "points": 10,
                "unlimited_stock": True,
            }
        ],
    }
    stored = await http.put(f"/v1/admin/lotteries/{lottery_id}", headers=admin, json=lottery)
    assert stored.status_code == 200, stored.text
    await credit(ledger, user, 100)
    me = {**bearer(user), "Idempotency-Key": f"draw-{user}"}
    drawn = await http.post(f"/v1/me/lotteries/{lottery_id}/draws", headers=me)
    assert drawn.status_code == 200, drawn.text
    result = drawn.json()
    assert result["prize_id"] in ("ten", "")
    verified = await http.get(
        f"/v1/me/draws/{result['draw_id']}/verification", headers=bearer(user)
    )
    assert verified.json()["matches"] is True
    wallet = (await http.get("/v1/me/wallet", headers=bearer(user))).json()
    assert wallet["points"]["available"] == 100 - 20 + result["points_won"]


async def test_event_batch_and_review_admin(http: httpx.AsyncClient, user: str) -> None:
    writer = {**bearer("backend", "events:write")}
    body = {
        "events": [
            {"event_id": f"b1-{user}", "user_id": user, "type": "LIKE"},
            {"event_id": f"b2-{user}", "user_id": user, "type": "PURCHASE"},
        ]
    }
    reply = await http.post("/v1/events/batch", headers=writer, json=body)
    assert reply.status_code == 200, reply.text
    first, second = reply.json()
    assert first["result"]["total_points"] == 1 and first["error"] is None
    assert (second["error"]["status"], second["error"]["reason"]) == (400, "INVALID_ARGUMENT")
    admin = bearer("operator", "admin")
    budget = {
        "period": "DAY",
        "points_limit": 1000000,
        "over_budget": "CUT",
    }
    stored = await http.put(f"/v1/admin/budgets/b-{user[-8:]}", headers=admin, json=budget)
    assert stored.status_code == 200, stored.text
    listed = (await http.get("/v1/admin/budgets", headers=admin)).json()["budgets"]
    assert f"b-{user[-8:]}" in {b["budget"]["budget_id"] for b in listed}
    # Removing a limit waits for a second person (see test_gateway_approvals.py).
    asked = await http.delete(f"/v1/admin/budgets/b-{user[-8:]}", headers=admin)
    assert asked.status_code == 202, asked.text
    decide = f"/v1/admin/approvals/{asked.json()['approval_id']}/approve"
    deleted = await http.post(decide, headers=bearer("second-operator", "admin"))
    assert json.loads(deleted.json()["result_json"]) == {"deleted": True}
    listed = (await http.get("/v1/admin/budgets", headers=admin)).json()["budgets"]
    assert f"b-{user[-8:]}" not in {b["budget"]["budget_id"] for b in listed}
    reviews = await http.get("/v1/admin/reviews", headers=admin)
    assert reviews.status_code == 200
    missing = await http.post(f"/v1/admin/reviews/{user}/nope/approve", headers=admin)
    assert_error(missing, 404, "REVIEW_NOT_FOUND")
