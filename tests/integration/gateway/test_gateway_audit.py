"""Every operator's change through the gateway lands in the audit log before its answer:
who (subject and roles), what (route, path, request and answer), when and from where; a
replay under the same key once; a refusal too; a read never."""

from __future__ import annotations

import uuid

import httpx

from gateway.auth import mint
from tests.support.gateway_calls import AUTH


def as_role(role: str, actor: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(AUTH, actor, roles=(role,))}"}


async def entries(http: httpx.AsyncClient, actor: str) -> list[dict]:  # type: ignore[type-arg]
    reply = await http.get(f"/v1/admin/audit-log?actor={actor}", headers=as_role("finance", "f"))
    assert reply.is_success, reply.text
    return list(reply.json()["entries"])


async def test_an_operators_change_is_recorded_once_with_who_what_and_where(
    http: httpx.AsyncClient, user: str
) -> None:
    actor = f"ops-{user[-8:]}"
    headers = {
        **as_role("operator", actor),
        "Idempotency-Key": uuid.uuid4().hex,
        "User-Agent": "audit-test/1",
    }
    url = f"/v1/admin/cap-groups/g-{user[-8:]}"
    for _ in range(2):  # a retry of the same change
        reply = await http.put(url, json={"daily_cap": 7}, headers=headers)
        assert reply.is_success, reply.text
    assert (await http.get("/v1/admin/cap-groups", headers=headers)).is_success  # a read
    [recorded] = await entries(http, actor)
    assert recorded["action"] == "PUT /v1/admin/cap-groups/{name}"
    assert (recorded["target"], recorded["status"], recorded["roles"]) == (url, 200, ["operator"])
    assert (recorded["ip"], recorded["user_agent"]) == ("127.0.0.1", "audit-test/1")
    assert recorded["request_json"] == '{"daily_cap":7}'
    assert '"daily_cap":7' in recorded["response_json"]
    assert len(recorded["hash"]) == 64 and recorded["created_at"]

    # A viewer's attempt is refused, and the attempt is on the record.
    viewer = f"viewer-{user[-8:]}"
    tried = {**as_role("viewer", viewer), "Idempotency-Key": uuid.uuid4().hex}
    assert (await http.put(url, json={"daily_cap": 9}, headers=tried)).status_code == 403
    [attempt] = await entries(http, viewer)
    assert (attempt["status"], attempt["roles"]) == (403, ["viewer"])

    # Reading the log is for finance and admin.
    refused = await http.get("/v1/admin/audit-log", headers=as_role("operator", actor))
    assert (refused.status_code, refused.json()["reason"]) == (403, "MISSING_ROLE")
