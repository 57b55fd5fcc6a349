"""The role table: every admin route of the OpenAPI document declares its roles, the table
names no route that does not exist, and a claim's roles are read as identity providers send
them."""

from __future__ import annotations

import json
from pathlib import Path

from gateway import roles

DOCUMENT = json.loads((Path(__file__).resolve().parents[3] / "openapi.json").read_text())
ADMIN = {
    (method.upper(), path): operation
    for path, operations in DOCUMENT["paths"].items()
    if path.startswith("/v1/admin/")
    for method, operation in operations.items()
}


def test_every_admin_route_shows_its_roles() -> None:
    for (method, path), operation in ADMIN.items():
        assert operation["x-roles"] == sorted(roles.ALLOWED[roles.need(method, path)]), path
        assert operation["description"].endswith(f"Roles: {', '.join(operation['x-roles'])}.")


def test_the_table_names_only_routes_that_exist() -> None:
    assert set(roles.NEEDS) <= set(ADMIN), set(roles.NEEDS) - set(ADMIN)


def test_an_undeclared_change_needs_the_admin_role() -> None:
    assert roles.need("GET", "/v1/admin/anything") == "read"
    assert roles.need("POST", "/v1/admin/anything") == "admin"


def test_roles_come_as_a_list_or_a_string_and_the_admin_scope_counts() -> None:
    assert roles.roles_of(["viewer", "nobody", 3], ()) == {"viewer"}
    assert roles.roles_of("operator finance", ()) == {"operator", "finance"}
    assert roles.roles_of(None, ("admin",)) == {"admin"}
    assert roles.roles_of({"viewer": True}, ()) == frozenset()
