"""The approval queue (gateway/approvals.py): risky changes waiting for a second person.
Listed by anyone with an operator role; approved or rejected by someone other than the author
whose roles meet the approval's need (finance or admin). Approving carries the change out at
once and answers the approval with the change's own answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from gateway import approvals
from gateway.auth import operator
from gateway.backends import Backends
from gateway.dialect import model_for, to_json
from gateway.routes.common import (
    PAGE_SIZE,
    Operator,
    PageSize,
    PageToken,
    backends,
    idempotency_key,
)
from loyalty.webhooks.v1 import webhooks_pb2 as pb

router = APIRouter(prefix="/v1/admin/approvals", tags=["admin"], dependencies=[Depends(operator)])
Services = Annotated[Backends, Depends(backends)]
ApprovalId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Json = dict[str, Any]


@router.get("", response_model=model_for(pb.ListApprovalsResponse.DESCRIPTOR))
async def list_approvals(
    services: Services,
    status: Annotated[Literal["PENDING", "APPROVED", "DONE", "REJECTED"] | None, Query()] = None,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> Json:
    """Approvals, newest first: each change as asked, why it needs a second person, what it
    would change (the simulated cost, the budget before and after), and what became of it."""
    request = pb.ListApprovalsRequest(
        status=status or "", page_size=page_size, page_token=page_token
    )
    return to_json(await services.webhooks.ListApprovals(request, timeout=services.timeout))


@router.get("/{approval_id}", response_model=model_for(pb.Approval.DESCRIPTOR))
async def get_approval(approval_id: ApprovalId, services: Services) -> Json:
    """One approval."""
    reply = await services.webhooks.GetApproval(
        pb.GetApprovalRequest(approval_id=approval_id), timeout=services.timeout
    )
    return to_json(reply.approval)


@router.post("/{approval_id}/{decision}", response_model=model_for(pb.Approval.DESCRIPTOR))
async def decide(
    approval_id: ApprovalId,
    decision: Literal["approve", "reject"],
    principal: Operator,
    services: Services,
    request: Request,
    _: Annotated[str, Depends(idempotency_key)],
) -> Json:
    """Approve (the change is carried out now, once) or reject a pending approval; never by
    its author (409 SELF_APPROVAL). The same decision again answers the approval as it stands
    (whatever the key); another, or by someone else, 409 APPROVAL_DECIDED."""
    found = await services.webhooks.GetApproval(
        pb.GetApprovalRequest(approval_id=approval_id), timeout=services.timeout
    )
    approvals.check_decider(principal, found.approval)
    decided = await services.webhooks.DecideApproval(
        pb.DecideApprovalRequest(
            approval_id=approval_id, approve=decision == "approve", decided_by=principal.user_id
        ),
        timeout=services.admin_timeout,
    )
    approval = decided.approval
    if approval.status == "APPROVED":  # not carried out yet (or cut short): now, once
        approval = await approvals.carry_out(request, principal, approval)
    return to_json(approval)
