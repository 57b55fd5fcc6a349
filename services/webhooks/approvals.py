"""Two-person approval: a risky change waits here with why and what it would change, until
someone other than its author approves or rejects it. The gateway asks (RequestApproval),
decides (DecideApproval) and, once approved, carries the change out under the approval's own
idempotency key and records its answer (RecordApprovalResult). Every step is idempotent, so
an approval is carried out once however often it is retried."""

from __future__ import annotations

import asyncpg
from asyncpg import Record

from loyalty.webhooks.v1 import webhooks_pb2 as pb
from services.common.errors import FailedPrecondition, NotFound
from services.common.paging import Pager, token_number
from services.common.timestamps import to_timestamp
from services.common.validation import Checker
from services.webhooks import approvals_repository as repo
from services.webhooks.audit import MAX_BODY, ROLES

STATUSES = ("PENDING", "APPROVED", "DONE", "REJECTED")
NEEDS = ("finance", "admin")


def check(approval: pb.Approval) -> None:
    c = Checker("approval")
    c.text("author", approval.author, 128)
    c.require(set(approval.author_roles) <= ROLES, "author_roles", "known roles")
    c.text("action", approval.action, 300)
    c.text("target", approval.target, 1000)
    c.text("request_json", approval.request_json, MAX_BODY, required=False)
    c.identifier("request_key", approval.request_key, 200)
    c.text("reason", approval.reason, 500)
    c.text("detail_json", approval.detail_json, MAX_BODY, required=False)
    c.require(approval.needs in NEEDS, "needs", "finance or admin")
    c.done()


def approval_of(row: Record) -> pb.Approval:
    approval = pb.Approval(
        approval_id=row["approval_id"],
        author=row["author"],
        author_roles=row["author_roles"],
        action=row["action"],
        target=row["target"],
        request_json=row["request_json"],
        request_key=row["request_key"],
        reason=row["reason"],
        detail_json=row["detail_json"],
        needs=row["needs"],
        status=row["status"],
        decided_by=row["decided_by"],
        create_time=to_timestamp(row["created_at"]),
        result_status=row["result_status"],
        result_json=row["result_json"],
    )
    if row["decided_at"] is not None:
        approval.decide_time.CopyFrom(to_timestamp(row["decided_at"]))
    return approval


def _not_found(approval_id: int) -> NotFound:
    return NotFound("APPROVAL_NOT_FOUND", f"no approval {approval_id}", {})


class Approvals:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ask(self, approval: pb.Approval) -> Record:
        check(approval)
        fields = {name: getattr(approval, name) for name in repo.ASKED.replace(" ", "").split(",")}
        fields["author_roles"] = list(approval.author_roles)
        async with self.pool.acquire() as conn:
            row = await repo.ask(conn, fields)
            if row is None:
                row = await repo.asked(conn, approval.author, approval.request_key)
        assert row is not None
        return row

    async def get(self, approval_id: int) -> Record:
        async with self.pool.acquire() as conn:
            row = await repo.get(conn, approval_id)
        if row is None:
            raise _not_found(approval_id)
        return row

    async def page(self, status: str, pager: Pager) -> list[Record]:
        c = Checker()
        c.require(status in ("", *STATUSES), "status", "PENDING, APPROVED, DONE or REJECTED")
        c.done()
        before = token_number(pager.after[0]) if pager.after else None
        async with self.pool.acquire() as conn:
            return await repo.page(conn, status, before, pager.fetch)

    async def decide(self, approval_id: int, approve: bool, decided_by: str) -> Record:
        c = Checker()
        c.text("decided_by", decided_by, 128)
        c.done()
        wanted = "APPROVED" if approve else "REJECTED"
        async with self.pool.acquire() as conn:
            row = await repo.get(conn, approval_id)
            if row is None:
                raise _not_found(approval_id)
            if row["author"] == decided_by:
                raise FailedPrecondition(
                    "SELF_APPROVAL", "the author of a change cannot decide on it", {}
                )
            decided = await repo.decide(conn, approval_id, wanted, decided_by)
            if decided is not None:
                return decided
            row = await repo.get(conn, approval_id)
        assert row is not None
        same = row["decided_by"] == decided_by and (row["status"] == "REJECTED") != approve
        if not same:  # decided already, otherwise or by someone else
            raise FailedPrecondition(
                "APPROVAL_DECIDED",
                f"approval {approval_id} was decided already ({row['status'].lower()})",
                {"status": row["status"], "decided_by": row["decided_by"]},
            )
        return row

    async def finish(self, approval_id: int, result_status: int, result_json: str) -> Record:
        async with self.pool.acquire() as conn:
            row = await repo.finish(conn, approval_id, result_status, result_json[:MAX_BODY])
            if row is None:
                row = await repo.get(conn, approval_id)
        if row is None:
            raise _not_found(approval_id)
        return row
