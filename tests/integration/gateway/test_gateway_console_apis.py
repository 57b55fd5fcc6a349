"""What the console asks of the API beyond an app's needs: the review queue's size and the
device or IP a signal refers to, each budget's cost and limit in force, the point value of the
issuance report, every item and lottery for operators, a refused shipment that says why, and
validation messages in words."""

from __future__ import annotations

import uuid

import httpx

from tests.support.gateway_calls import assert_error, bearer

ADMIN = bearer("operator", "admin")
APP = bearer("app-backend", "events:write")


async def ok(reply: httpx.Response) -> dict:  # type: ignore[type-arg]
    assert reply.is_success, reply.text
    return dict(reply.json())


async def test_reviews_are_counted_and_name_the_shared_device(
    http: httpx.AsyncClient, user: str
) -> None:
    before = await ok(await http.get("/v1/admin/reviews?page_size=1", headers=ADMIN))
    device = f"phone-{user}"
    for account in ("a", "b", "c"):  # the third account on one device is reviewed
        event = {"user_id": f"{user}-{account}", "type": "LIKE", "device_id": device}
        headers = {**APP, "Idempotency-Key": uuid.uuid4().hex}
        await ok(await http.post("/v1/events", json=event, headers=headers))
    after = await ok(await http.get("/v1/admin/reviews?page_size=500", headers=ADMIN))
    assert after["total_size"] == before["total_size"] + 1
    [mine] = [r for r in after["reviews"] if r["user_id"] == f"{user}-c"]
    assert (mine["reasons"], mine["device_id"], mine["ip"]) == (["SHARED_DEVICE"], device, "")


async def test_a_budget_shows_its_cost_and_the_limit_in_force(
    http: httpx.AsyncClient, user: str
) -> None:
    budget_id = f"m-{user[-8:]}"
    budget = {
        "applies_to_all": False,
        "period": "TOTAL",
        "points_limit": 900_000,
        "money_limit": {"amount_minor": 5_000, "currency": "CNY"},  # ¥50: 5,000 points
        "over_budget": "CUT",
    }
    await ok(await http.put(f"/v1/admin/budgets/{budget_id}", json=budget, headers=ADMIN))
    budgets = (await ok(await http.get("/v1/admin/budgets", headers=ADMIN)))["budgets"]
    [mine] = [b for b in budgets if b["budget"]["budget_id"] == budget_id]
    assert mine["limit_points"] == 5_000  # the tighter of the two
    assert mine["used_cost"] == {"amount_minor": 0, "currency": "CNY"}
    await ok(await http.delete(f"/v1/admin/budgets/{budget_id}", headers=ADMIN))
    report = await ok(await http.get("/v1/admin/reports/issuance", headers=ADMIN))
    assert report["points_per_major_unit"] == 100
    assert report["cost"]["amount_minor"] == report["points_issued"] * 100 // 100


async def test_operators_see_disabled_items_and_every_lottery(
    http: httpx.AsyncClient, user: str
) -> None:
    item_id = f"off-{user[-8:]}"
    item = {"type": "VIRTUAL", "title": "Retired", "points_price": 5, "stock": 1, "enabled": False}
    await ok(await http.put(f"/v1/admin/items/{item_id}", json=item, headers=ADMIN))
    listed = (await ok(await http.get("/v1/admin/items?page_size=500", headers=ADMIN)))["items"]
    assert [i["enabled"] for i in listed if i["item_id"] == item_id] == [False]
    catalog = await ok(await http.get("/v1/catalog?page_size=500", headers=bearer(user)))
    assert item_id not in {i["item_id"] for i in catalog["items"]}

    lottery_id = f"l-{user[-8:]}"
    lottery = {
        "title": "Wheel",
        "points_per_draw": 10,
        "enabled": False,
        "prizes": [{"prize_id": "p", "kind": "POINTS", "weight": 1, "points": 5, "stock": 1}],
    }
    for suffix in ("", "-2"):
        url = f"/v1/admin/lotteries/{lottery_id}{suffix}"
        await ok(await http.put(url, json=lottery, headers=ADMIN))
    first = await ok(await http.get("/v1/admin/lotteries?page_size=1", headers=ADMIN))
    assert len(first["lotteries"]) == 1 and first["next_page_token"]
    every = await ok(await http.get("/v1/admin/lotteries?page_size=500", headers=ADMIN))
    [mine] = [x for x in every["lotteries"] if x["lottery_id"] == lottery_id]
    assert (mine["title"], mine["enabled"]) == ("Wheel", False)


async def test_a_refused_shipment_says_why(http: httpx.AsyncClient, user: str) -> None:
    item_id = f"mug-{user[-8:]}"
    mug = {"type": "PHYSICAL", "title": "Mug", "points_price": 5, "stock": 2, "enabled": True}
    await ok(await http.put(f"/v1/admin/items/{item_id}", json=mug, headers=ADMIN))
    gift = {"points": 5, "note": "for a mug"}
    await ok(await http.post(f"/v1/admin/members/{user}/adjustments", json=gift, headers=ADMIN))
    headers = {**bearer(user), "Idempotency-Key": uuid.uuid4().hex}
    body = {"item_id": item_id, "shipping_address": "1 Road"}
    redeemed = await ok(await http.post("/v1/me/redemptions", json=body, headers=headers))
    path = f"/v1/admin/users/{user}/redemptions/{redeemed['redemption_id']}/shipment"
    await ok(await http.post(path, json={"status": "DELIVERED"}, headers=ADMIN))
    late = await http.post(path, json={"status": "SHIPPED"}, headers=ADMIN)
    assert_error(late, 409, "SHIPMENT_NOT_UPDATABLE")
    assert late.json()["detail"] == "the shipment is already delivered"


async def test_a_malformed_id_is_described_in_words(http: httpx.AsyncClient) -> None:
    reply = await http.put("/v1/admin/rules/Bad Id", json={}, headers=ADMIN)
    assert_error(reply, 400, "INVALID_ARGUMENT")
    [violation] = reply.json()["violations"]
    assert violation["field"] == "path.rule_id"
    assert "lower-case letters" in violation["description"]
    assert "^" not in violation["description"]


async def test_members_are_found_by_id_prefix_and_inactivity(
    http: httpx.AsyncClient, user: str
) -> None:
    for suffix in ("a", "b"):
        gift = {"points": 7, "note": "segment"}
        url = f"/v1/admin/members/{user}-{suffix}/adjustments"
        await ok(await http.post(url, json=gift, headers=ADMIN))
    found = await ok(await http.get(f"/v1/admin/segments?prefix={user}-", headers=ADMIN))
    assert [(m["user_id"], m["available"]) for m in found["members"]] == [
        (f"{user}-a", 7),
        (f"{user}-b", 7),
    ]
    assert all(m["changed_at"] for m in found["members"])
    paged = await ok(
        await http.get(f"/v1/admin/segments?prefix={user}-&page_size=1", headers=ADMIN)
    )
    assert [m["user_id"] for m in paged["members"]] == [f"{user}-a"] and paged["next_page_token"]
    idle = f"/v1/admin/segments?prefix={user}-&inactive_since=2020-01-01T00:00:00Z"
    assert (await ok(await http.get(idle, headers=ADMIN)))["members"] == []
    too_long = await http.get(f"/v1/admin/segments?prefix={'x' * 129}", headers=ADMIN)
    assert_error(too_long, 400, "INVALID_ARGUMENT")
