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


async def test_an_operator_adjusts_up_to_the_limit_and_finance_beyond(
    http: httpx.AsyncClient, user: str
) -> None:
    url = f"/v1/admin/members/{user}/adjustments"
    small = await http.post(
        url, json={"points": 1000, "note": "goodwill"}, headers=token("operator")
    )
    assert small.is_success, small.text
    large = await http.post(url, json={"points": 1001, "note": "big"}, headers=token("operator"))
    assert_error(large, 403, "ADJUSTMENT_NEEDS_FINANCE")
    assert large.json()["metadata"] == {"limit": "1000"}
    done = await http.post(url, json={"points": 1001, "note": "big"}, headers=token("finance"))
    assert done.is_success, done.text
    me = (await http.get("/v1/admin/me", headers=token("operator"))).json()
    assert (me["roles"], me["adjustment_limit"]) == (["operator"], 1000)
    assert me["can"] == ["adjust", "program", "read", "simulate"]
    assert (await http.get("/v1/admin/me", headers=token("finance"))).json()[
        "adjustment_limit"
    ] is None
    # The admin scope of earlier tokens is the admin role.
    legacy = (await http.get("/v1/admin/me", headers=bearer("ops", "admin"))).json()
    assert legacy["roles"] == ["admin"]
