"""Experiments over HTTP, as an operator and an app see them: roles, refusals by field and by
state, an event's answer naming the member's arm, results, the assignments export, and the
promotion kept for admins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from gateway.auth import mint
from tests.support.gateway_calls import AUTH

APP = {"Authorization": f"Bearer {mint(AUTH, 'app', ('events:write',))}"}


def as_role(role: str) -> dict[str, str]:
    token = mint(AUTH, f"ops-{role}", roles=(role,))
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}


def draft() -> dict[str, object]:
    share = {"rule_id": "share", "kind": "ACTION", "event_type": "SHARE", "action": {"points": 3}}
    end = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    return {
        "name": "Shares x1.5",
        "arms": [
            {"arm_id": "a", "role": "CONTROL", "share_bp": 5000},
            {
                "arm_id": "b",
                "role": "TREATMENT",
                "share_bp": 5000,
                "rules": [{**share, "enabled": True}],
            },
        ],
        "end_at": end,
        "event_types": ["SHARE"],
    }


async def test_an_experiment_over_http(http: httpx.AsyncClient, user: str) -> None:
    path = f"/v1/admin/experiments/shares-{user[-8:]}"
    refused = await http.put(path, json=draft(), headers=as_role("viewer"))
    assert refused.status_code == 403 and refused.json()["reason"] == "MISSING_ROLE"
    bad = {**draft(), "arms": [{"arm_id": "a", "role": "CONTROL", "share_bp": 10000}]}
    invalid = await http.put(path, json=bad, headers=as_role("operator"))
    assert invalid.status_code == 400
    (violation,) = invalid.json()["violations"]
    assert violation == {"field": "experiment.arms", "description": "must hold 2 to 10 arms"}
    saved = await http.put(path, json=draft(), headers=as_role("operator"))
    assert saved.status_code == 200 and saved.json()["status"] == "DRAFT", saved.text

    started = await http.post(f"{path}/start", headers=as_role("operator"))
    assert started.json()["status"] == "RUNNING" and started.json()["start_at"]
    try:
        again = await http.post(f"{path}/start", headers=as_role("operator"))
        assert again.status_code == 409 and again.json()["reason"] == "EXPERIMENT_NOT_DRAFT"
        answers = []
        for n in range(4):
            body = {"user_id": f"{user}-{n}", "type": "SHARE"}
            reply = await http.post(
                "/v1/events", json=body, headers={**APP, "Idempotency-Key": uuid.uuid4().hex}
            )
            assert reply.is_success, reply.text
            answers.append(reply.json())
        experiment_id = path.rsplit("/", 1)[-1]
        arms = {f"{user}-{n}": a["arms"][experiment_id] for n, a in enumerate(answers)}
        for answer, arm in zip(answers, arms.values(), strict=True):
            (award,) = [w for w in answer["awards"] if w["rule_id"] == "share"]
            assert (award["experiment_id"], award["arm_id"], award["points"]) == (
                experiment_id,
                arm,
                3 if arm == "b" else 2,
            )
        found = (await http.get(path, headers=as_role("viewer"))).json()
        assert sum(a["members"] for a in found["results"]["arms"]) == 4
        listed = await http.get(f"{path}/assignments?page_size=3", headers=as_role("viewer"))
        page = listed.json()
        rest = await http.get(
            f"{path}/assignments?page_size=3&page_token={page['next_page_token']}",
            headers=as_role("viewer"),
        )
        exported = page["assignments"] + rest.json()["assignments"]
        assert {a["user_id"]: a["arm_id"] for a in exported} == arms
        denied = await http.post(
            f"{path}/promote", json={"arm_id": "b"}, headers=as_role("operator")
        )
        assert denied.status_code == 403
    finally:
        ended = await http.post(f"{path}/conclude", headers=as_role("operator"))
    assert ended.json()["experiment"]["status"] == "CONCLUDED", ended.text
    late = await http.post(f"{path}/conclude", headers=as_role("operator"))
    assert late.status_code == 409 and late.json()["reason"] == "EXPERIMENT_NOT_RUNNING"
    missing = await http.get("/v1/admin/experiments/no-such-one", headers=as_role("viewer"))
    assert missing.status_code == 404 and missing.json()["reason"] == "EXPERIMENT_NOT_FOUND"
