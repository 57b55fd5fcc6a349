"""Two-person approval of risky changes, at the gateway.

A route that finds its change risky (`ask`) does not carry it out: it puts the request in the
approval queue (the webhooks service) and answers 202 with the approval. Another operator
whose roles meet the approval's need approves it (`carry_out`): the gateway then sends the
stored request through its own routes, as the author with the approver's roles added, under
the approval's own Idempotency-Key, so it is applied once however often the approval is
retried, and records the answer. The author can never approve their own change.

What is risky (the routes decide, see each): an adjustment above GATEWAY_ADJUSTMENT_LIMIT, a
rule or campaign whose simulation over the last 7 days costs more than what it replaces, a
budget raised or removed, a webhook secret rotated.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import Message

from gateway import roles
from gateway.audit import MAX_BODY
from gateway.auth import Principal
from gateway.backends import Backends
from gateway.dialect import to_json
from loyalty.webhooks.v1 import webhooks_pb2 as pb


async def ask(
    request: Request,
    principal: Principal,
    reason: str,
    detail: dict[str, Any],
    needs: str = "finance",
) -> JSONResponse | None:
    """None when the change may go ahead (it was approved); else the 202 answer of the
    approval now waiting (the same one for the same Idempotency-Key)."""
    if principal.approved:
        return None
    backends: Backends = request.app.state.backends
    route = request.scope["route"].path
    approval = pb.Approval(
        author=principal.user_id,
        author_roles=sorted(principal.roles),
        action=f"{request.method} {route}",
        target=request.url.path,
        request_json=(await request.body()).decode("utf-8", "replace")[:MAX_BODY],
        request_key=request.headers.get("idempotency-key", ""),
        reason=reason,
        detail_json=json.dumps(detail, ensure_ascii=False, separators=(",", ":")),
        needs=needs,
    )
    reply = await backends.webhooks.RequestApproval(
        pb.RequestApprovalRequest(approval=approval), timeout=backends.admin_timeout
    )
    return JSONResponse(to_json(reply.approval), status_code=202)


def check_decider(principal: Principal, approval: pb.Approval) -> None:
    roles.require(principal.roles, approval.needs, f"approval {approval.approval_id}")


async def carry_out(request: Request, approver: Principal, approval: pb.Approval) -> pb.Approval:
    """Sends an approved change through the gateway's routes once, and records its answer."""
    backends: Backends = request.app.state.backends
    method, _ = approval.action.split(" ", 1)
    author = Principal(
        approval.author,
        frozenset(),
        frozenset(approval.author_roles) | approver.roles,
        approved=True,
    )
    status, body = await _call(request, method, approval, author)
    reply = await backends.webhooks.RecordApprovalResult(
        pb.RecordApprovalResultRequest(
            approval_id=approval.approval_id, result_status=status, result_json=body
        ),
        timeout=backends.admin_timeout,
    )
    return reply.approval


async def _call(
    request: Request, method: str, approval: pb.Approval, author: Principal
) -> tuple[int, str]:
    """The gateway's own routes (no edge, no audit: the approval's decision is the audited
    request), called in process."""
    body = approval.request_json.encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"idempotency-key", f"approval-{approval.approval_id}".encode()),
    ]
    scope = {
        **request.scope,
        "method": method,
        "path": approval.target,
        "raw_path": approval.target.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {"principal": author},
    }
    scope.pop("route", None)
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await request.app.router(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), answer.decode("utf-8", "replace")[:MAX_BODY]
