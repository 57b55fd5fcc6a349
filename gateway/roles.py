"""Operators' roles, and what each admin route needs.

A token names its roles in a claim (`roles` by default, `GATEWAY_ROLES_CLAIM`): a list, or a
space-separated string, as identity providers issue them. The `admin` scope of earlier
tokens counts as the admin role.

- viewer: reads everything;
- operator: also rules, campaigns, tiers, cap groups, experiments, simulations, reviews, the
  mall, blacklists, dead letters, and member adjustments (large ones wait for approval);
- finance: also adjustments, budgets, expiry runs, the ledger's audit, the audit log,
  simulations, and deciding approvals (gateway/approvals.py);
- admin: everything (webhooks and promoting an experiment's arm included, and deciding
  approvals).

Every admin route's need is declared here, in one table: a GET reads unless it is listed. The
OpenAPI document shows each operation's roles (`x-roles`), and a test holds every route to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fastapi import Request

from gateway.errors import HttpError

ROLES = ("viewer", "operator", "finance", "admin")
# Who may do what, beyond reading.
ALLOWED: Mapping[str, frozenset[str]] = {
    "read": frozenset(ROLES),
    "program": frozenset({"operator", "admin"}),
    "finance": frozenset({"finance", "admin"}),
    "adjust": frozenset({"operator", "finance", "admin"}),
    "simulate": frozenset({"operator", "finance", "admin"}),  # changes nothing, costs CPU
    "admin": frozenset({"admin"}),
    "decide": frozenset({"finance", "admin"}),  # approvals: each names finance or admin
}
# (method, route) -> need, for every admin route that does more than read.
NEEDS: Mapping[tuple[str, str], str] = {
    ("GET", "/v1/admin/audit"): "finance",
    ("GET", "/v1/admin/audit-log"): "finance",
    ("POST", "/v1/admin/approvals/{approval_id}/{decision}"): "decide",
    ("POST", "/v1/admin/blacklist"): "program",
    ("DELETE", "/v1/admin/blacklist/{kind}/{value}"): "program",
    ("PUT", "/v1/admin/budgets/{budget_id}"): "finance",
    ("DELETE", "/v1/admin/budgets/{budget_id}"): "finance",
    ("PUT", "/v1/admin/campaigns/{campaign_id}"): "program",
    ("PUT", "/v1/admin/cap-groups/{name}"): "program",
    ("POST", "/v1/admin/dead-letters/resolve"): "program",
    ("POST", "/v1/admin/dead-letters/retry"): "program",
    ("POST", "/v1/admin/expiry-runs"): "finance",
    ("PUT", "/v1/admin/experiments/{experiment_id}"): "program",
    ("POST", "/v1/admin/experiments/{experiment_id}/start"): "program",
    ("POST", "/v1/admin/experiments/{experiment_id}/conclude"): "program",
    # Promotion changes rules for everyone without the cost check of PUT /rules: admin only.
    ("POST", "/v1/admin/experiments/{experiment_id}/promote"): "admin",
    ("PUT", "/v1/admin/items/{item_id}"): "program",
    ("PUT", "/v1/admin/lotteries/{lottery_id}"): "program",
    ("POST", "/v1/admin/lotteries/{lottery_id}/seed-rotations"): "program",
    ("POST", "/v1/admin/members/{user_id}/adjustments"): "adjust",
    ("POST", "/v1/admin/reviews/{user_id}/{event_id}/{decision}"): "program",
    ("PUT", "/v1/admin/rules/{rule_id}"): "program",
    ("POST", "/v1/admin/simulations"): "simulate",
    ("PUT", "/v1/admin/tiers/{tier_id}"): "program",
    ("POST", "/v1/admin/users/{user_id}/redemptions/{redemption_id}/shipment"): "program",
    ("POST", "/v1/admin/webhooks/deliveries/{delivery_id}/redeliver"): "admin",
    ("POST", "/v1/admin/webhooks/subscriptions"): "admin",
    ("PUT", "/v1/admin/webhooks/subscriptions/{subscription_id}"): "admin",
    ("POST", "/v1/admin/webhooks/subscriptions/{subscription_id}/replay"): "admin",
    ("POST", "/v1/admin/webhooks/subscriptions/{subscription_id}/secret"): "admin",
}


def roles_of(claim: object, scopes: Iterable[str]) -> frozenset[str]:
    """The known roles a token's claim names (a list or a space-separated string), with the
    admin role for the `admin` scope."""
    named = claim.split() if isinstance(claim, str) else claim if isinstance(claim, list) else []
    found = {role for role in named if isinstance(role, str) and role in ROLES}
    if "admin" in scopes:
        found.add("admin")
    return frozenset(found)


def need(method: str, route: str) -> str:
    """What a route needs: declared in NEEDS, else reading for a GET. A change not declared
    needs the admin role, so a new route is never open by omission."""
    return NEEDS.get((method, route), "read" if method == "GET" else "admin")


def check(request: Request, roles: frozenset[str]) -> None:
    """Refuses the request unless `roles` allow its route (403 MISSING_SCOPE without any
    operator role, MISSING_ROLE with the wrong one)."""
    if not roles:
        raise HttpError(
            403,
            "MISSING_SCOPE",
            "this route is for operators: a role (viewer, operator, finance or admin) or the "
            "'admin' scope",
            {"scope": "admin"},
        )
    require(roles, need(request.method, request.scope["route"].path), "this route")


def require(roles: frozenset[str], needed: str, what: str) -> None:
    """403 MISSING_ROLE unless `roles` meet `needed` (a key of ALLOWED); `what` is refused."""
    allowed = ALLOWED[needed]
    if not roles & allowed:
        raise HttpError(
            403,
            "MISSING_ROLE",
            f"{what} needs one of the roles {', '.join(sorted(allowed))}",
            {"roles": ",".join(sorted(allowed))},
        )
