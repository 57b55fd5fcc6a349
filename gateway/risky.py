"""Which program changes wait for a second person (gateway/approvals.py), and what each would
change: a rule or campaign whose replay over the last week costs more with it than without,
and a budget raised or removed."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import Request
from fastapi.responses import JSONResponse

from gateway import approvals
from gateway.auth import Principal
from gateway.backends import Backends
from gateway.dialect import to_json
from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as rpb

REPLAY_DAYS = 7


async def costlier(
    request: Request, operator: Principal, draft: rpb.Rule | rpb.Campaign
) -> JSONResponse | None:
    """Asks for approval when the draft, replayed over the last week's events, costs more
    than the program in force; None when it may go ahead."""
    if operator.approved or not draft.enabled:
        return None
    backends: Backends = request.app.state.backends
    simulation = rpb.SimulateEventsRequest(replay_days=REPLAY_DAYS)
    if isinstance(draft, rpb.Rule):
        simulation.draft_rules.append(draft)
    else:
        simulation.draft_campaigns.append(draft)
    try:
        reply = await backends.rules.SimulateEvents(simulation, timeout=backends.admin_timeout * 3)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return None  # the upsert refuses it, naming its own fields
        raise
    before, after = reply.current.cost, reply.draft.cost
    if after.amount_minor <= before.amount_minor:
        return None
    detail = {
        "replayed_days": REPLAY_DAYS,
        "events": len(reply.results),
        "cost_before": to_json(before),
        "cost_after": to_json(after),
        "cost_increase": to_json(
            common_pb2.Money(
                amount_minor=after.amount_minor - before.amount_minor, currency=after.currency
            )
        ),
    }
    reason = f"replayed over the last {REPLAY_DAYS} days, it raises the cost"
    return await approvals.ask(request, operator, reason, detail)


def _looser(old: int, new: int) -> bool:
    """A limit (0: none) that lets more through than before."""
    return old > 0 and (new == 0 or new > old)


async def raised(
    request: Request, operator: Principal, budget_id: str, new: rpb.Budget | None
) -> JSONResponse | None:
    """Asks for approval when a budget's limit goes up or away (`new` None: deleted)."""
    if operator.approved:
        return None
    backends: Backends = request.app.state.backends
    listed = await backends.rules.ListBudgets(rpb.ListBudgetsRequest(), timeout=backends.timeout)
    old = next((b.budget for b in listed.budgets if b.budget.budget_id == budget_id), None)
    if old is None:
        return None
    points, money = (0, 0) if new is None else (new.points_limit, new.money_limit.amount_minor)
    if not (_looser(old.points_limit, points) or _looser(old.money_limit.amount_minor, money)):
        return None
    detail: dict[str, Any] = {
        "before": to_json(old),
        "after": None if new is None else to_json(new),
    }
    reason = "the budget is removed" if new is None else "the budget's limit goes up"
    return await approvals.ask(request, operator, reason, detail)
