"""Roles × admin routes: every admin operation of the served OpenAPI document, called by a
member (no role), a viewer, an operator, finance and an admin, answers exactly as its `x-roles`
says: a refusal (403) for a role not listed, anything but a refusal for one listed. Requests
carry placeholder ids and an empty body, so an allowed call is refused on its content (400,
404) or does what an empty request does; none is refused for its role."""

from __future__ import annotations

import uuid

import httpx

from gateway.auth import mint
from tests.support.gateway_calls import AUTH, assert_error, bearer

ROLES = ("viewer", "operator", "finance", "admin")


def token(role: str | None) -> dict[str, str]:
    roles = (role,) if role else ()
    return {"Authorization": f"Bearer {mint(AUTH, f'who-{role}', roles=roles)}"}


def concrete(path: str, operation: dict, user: str) -> str:  # type: ignore[type-arg]
    """The path with a placeholder for each parameter (a valid one where a pattern asks)."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            value = {"decision": "approve", "kind": "USER", "redemption_id": "1"}.get(
                parameter["name"], f"r-{user[-8:]}"
            )
            path = path.replace("{" + parameter["name"] + "}", value)
    return path


async def test_every_admin_route_answers_each_role_as_documented(
    http: httpx.AsyncClient, user: str
) -> None:
    document = (await http.get("/openapi.json")).json()
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/admin/"):
            continue
        for method, operation in operations.items():
            allowed = set(operation["x-roles"])
            url = concrete(path, operation, user)
            for role in (None, *ROLES):
                headers = {**token(role), "Idempotency-Key": uuid.uuid4().hex}
                body: dict[str, object] | None = None if method in ("get", "delete") else {}
                reply = await http.request(method.upper(), url, json=body, headers=headers)
                where = f"{method.upper()} {path} as {role}: {reply.status_code} {reply.text[:200]}"
                if role is None:
                    assert_error(reply, 403, "MISSING_SCOPE")
                elif role in allowed:
                    assert reply.status_code != 403, where
                else:
                    assert (reply.status_code, reply.json()["reason"]) == (403, "MISSING_ROLE"), (
                        where
                    )
                checked += 1
    assert checked >= 5 * 50  # every route, five callers


async def test_a_large_adjustment_waits_for_a_second_person(
    http: httpx.AsyncClient, user: str
) -> None:
    url = f"/v1/admin/members/{user}/adjustments"
    small = await http.post(
        url, json={"points": 1000, "note": "goodwill"}, headers=token("operator")
    )
    assert small.is_success, small.text
    key = {"Idempotency-Key": uuid.uuid4().hex}
    asked = await http.post(
        url, json={"points": 5000, "note": "big"}, headers={**token("operator"), **key}
    )
    assert asked.status_code == 202, asked.text
    approval = asked.json()
    assert (approval["status"], approval["needs"], approval["author"]) == (
        "PENDING",
        "finance",
        "who-operator",
    )
    again = await http.post(
        url, json={"points": 5000, "note": "big"}, headers={**token("operator"), **key}
    )
    assert again.json()["approval_id"] == approval["approval_id"]  # the same intent, once
    balance = (await http.get(f"/v1/admin/members/{user}", headers=token("viewer"))).json()
    assert balance["points"]["available"] == 1000  # nothing moved yet

    decide = f"/v1/admin/approvals/{approval['approval_id']}"
    refused = await http.post(f"{decide}/approve", headers={**token("operator"), **key})
    assert (refused.status_code, refused.json()["reason"]) == (403, "MISSING_ROLE")
    finance = {"Authorization": f"Bearer {mint(AUTH, 'fin-1', roles=('finance',))}"}
    for _ in range(2):  # approved, then the same approval again: carried out once
        done = await http.post(f"{decide}/approve", headers={**finance, "Idempotency-Key": "a1"})
        assert done.is_success, done.text
        assert (done.json()["status"], done.json()["decided_by"]) == ("DONE", "fin-1")
        assert done.json()["result_status"] == 200
    balance = (await http.get(f"/v1/admin/members/{user}", headers=token("viewer"))).json()
    assert balance["points"]["available"] == 6000
    late = await http.post(f"{decide}/reject", headers={**finance, "Idempotency-Key": "a2"})
    assert_error(late, 409, "APPROVAL_DECIDED")

    # Finance's own large adjustment waits for someone else too.
    own = await http.post(
        url, json={"points": -2000, "note": "fix"}, headers={**finance, "Idempotency-Key": "f1"}
    )
    assert own.status_code == 202
    mine = f"/v1/admin/approvals/{own.json()['approval_id']}/approve"
    assert_error(
        await http.post(mine, headers={**finance, "Idempotency-Key": "f2"}), 409, "SELF_APPROVAL"
    )
    pending = (await http.get("/v1/admin/approvals?status=PENDING", headers=token("viewer"))).json()
    assert own.json()["approval_id"] in [a["approval_id"] for a in pending["approvals"]]

    me = (await http.get("/v1/admin/me", headers=token("operator"))).json()
    assert (me["roles"], me["adjustment_limit"]) == (["operator"], 1000)
    assert me["can"] == ["adjust", "program", "read", "simulate"]
    # The admin scope of earlier tokens is the admin role.
    legacy = (await http.get("/v1/admin/me", headers=bearer("ops", "admin"))).json()
    assert legacy["roles"] == ["admin"]
