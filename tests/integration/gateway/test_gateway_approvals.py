"""Program changes that wait for a second person: a rule whose replay over the last week
costs more, and a budget raised or removed; a change that costs less or tightens goes ahead."""

from __future__ import annotations

import json
import uuid

import httpx

from gateway.auth import mint
from tests.support.gateway_calls import AUTH

APP = {"Authorization": f"Bearer {mint(AUTH, 'app', ('events:write',))}"}


def as_role(role: str, who: str) -> dict[str, str]:
    token = mint(AUTH, who, roles=(role,))
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}


async def approve(http: httpx.AsyncClient, approval: dict, who: str = "fin-2") -> dict:  # type: ignore[type-arg]
    url = f"/v1/admin/approvals/{approval['approval_id']}/approve"
    done = await http.post(url, headers=as_role("finance", who))
    assert done.is_success, done.text
    return dict(done.json())


async def test_a_rule_that_costs_more_waits_and_one_that_costs_less_does_not(
    http: httpx.AsyncClient, user: str
) -> None:
    for n in range(3):  # the week's traffic the draft is replayed over
        event = {"user_id": f"{user}-{n}", "type": "FORWARD", "event_id": f"fw-{user}-{n}"}
        assert (
            await http.post(
                "/v1/events", json=event, headers={**APP, "Idempotency-Key": uuid.uuid4().hex}
            )
        ).is_success
    rule_id = f"fw-{user[-8:]}"
    rule = {"kind": "ACTION", "event_type": "FORWARD", "enabled": True, "action": {"points": 10}}
    asked = await http.put(
        f"/v1/admin/rules/{rule_id}", json=rule, headers=as_role("operator", "op-1")
    )
    assert asked.status_code == 202, asked.text
    approval = asked.json()
    detail = json.loads(approval["detail_json"])
    assert detail["cost_increase"]["amount_minor"] >= 3 * 10 * 100 // 100  # 3 forwards × 10 points
    assert "raises the cost" in approval["reason"]
    rules = (await http.get("/v1/admin/rules", headers=as_role("viewer", "v"))).json()["rules"]
    assert rule_id not in [r["rule_id"] for r in rules]

    done = await approve(http, approval)
    assert done["result_status"] == 200 and f'"rule_id":"{rule_id}"' in done["result_json"]
    rules = (await http.get("/v1/admin/rules", headers=as_role("viewer", "v"))).json()["rules"]
    [stored] = [r for r in rules if r["rule_id"] == rule_id]
    assert (stored["enabled"], stored["version"]) == (True, 1)

    off = await http.put(
        f"/v1/admin/rules/{rule_id}",
        json={**rule, "enabled": False},
        headers=as_role("operator", "op-1"),
    )
    assert off.status_code == 200, off.text  # costs less: no second person needed


async def test_a_budget_raised_or_removed_waits_and_a_tighter_one_does_not(
    http: httpx.AsyncClient, user: str
) -> None:
    url = f"/v1/admin/budgets/b-{user[-8:]}"
    budget = {"applies_to_all": False, "period": "DAY", "points_limit": 100, "over_budget": "CUT"}
    assert (
        await http.put(url, json=budget, headers=as_role("finance", "fin-1"))
    ).status_code == 200
    tighter = await http.put(
        url, json={**budget, "points_limit": 50}, headers=as_role("finance", "fin-1")
    )
    assert tighter.status_code == 200, tighter.text
    raised = await http.put(
        url, json={**budget, "points_limit": 500}, headers=as_role("finance", "fin-1")
    )
    assert raised.status_code == 202, raised.text
    assert await approve(http, raised.json()) != {}
    listed = (await http.get("/v1/admin/budgets", headers=as_role("viewer", "v"))).json()["budgets"]
    assert [
        b["budget"]["points_limit"] for b in listed if b["budget"]["budget_id"] == f"b-{user[-8:]}"
    ] == [500]
    removed = await http.delete(url, headers=as_role("finance", "fin-1"))
    assert removed.status_code == 202
    assert (await approve(http, removed.json()))["result_status"] == 200
    listed = (await http.get("/v1/admin/budgets", headers=as_role("viewer", "v"))).json()["budgets"]
    assert f"b-{user[-8:]}" not in [b["budget"]["budget_id"] for b in listed]
