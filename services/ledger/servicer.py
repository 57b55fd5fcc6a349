"""The gRPC edge of the ledger: validate, run the operation exactly once, shape the reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc

from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc as pb_grpc
from services.common.db import Conn, current_time
from services.common.errors import DomainError, FieldViolation, InvalidArgument
from services.common.paging import EXPORT, LIST, Pager, encode_token, token_number
from services.common.timestamps import from_timestamp, to_timestamp
from services.common.validation import MAX_USER_ID
from services.ledger import convert, idempotency, queries, validation
from services.ledger import repository as repo
from services.ledger import requests_repository as requests_repo
from services.ledger.config import LedgerConfig
from services.ledger.engine import BatchEngine, GroupCommit, Mutation, Op
from services.ledger.expiry import expire_due
from services.ledger.operations import Operations
from services.ledger.watch import BalanceWatchers

Context = grpc.aio.ServicerContext[Any, Any]
MAX_BATCH = 5000
MAX_RECENT = 50  # transfers a GetBalance may carry
MAX_SPENDERS = 5000  # members a FindSpenders may ask about
SYSTEM_SCOPE = ""  # requests not tied to one member (expiry runs) use this user id


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(self, pool: asyncpg.Pool, config: LedgerConfig, watchers: BalanceWatchers):
        self.pool = pool
        self.config = config
        self.ops = Operations(config)
        self.watchers = watchers
        self.engine = BatchEngine(self.ops)
        self.group_commit = GroupCommit(pool, self.engine, max_queued=config.write_queue_limit)
        # Keyed by the BatchOperation oneof field names.
        self.mutations = {
            "credit": Mutation("Credit", validation.check_credit, pb.CreditResponse),
            "debit": Mutation(
                "Debit", validation.check_debit, pb.DebitResponse, self.ops.debit, atomic=True
            ),
            "hold": Mutation(
                "Hold", validation.check_hold, pb.HoldResponse, self.ops.hold, atomic=True
            ),
            "capture_hold": Mutation(
                "CaptureHold",
                validation.check_capture,
                pb.CaptureHoldResponse,
                self.ops.capture_hold,
            ),
            "release_hold": Mutation(
                "ReleaseHold",
                validation.check_release,
                pb.ReleaseHoldResponse,
                self.ops.release_hold,
            ),
            "reverse": Mutation(
                "Reverse", validation.check_reverse, pb.ReverseResponse, self.ops.reverse
            ),
        }

    async def _mutate(self, name: str, request: Any) -> Any:
        outcome = await self.group_commit.submit(Op(self.mutations[name], request))
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def Credit(self, request: pb.CreditRequest, context: Context) -> pb.CreditResponse:
        return await self._mutate("credit", request)  # type: ignore[no-any-return]

    async def Debit(self, request: pb.DebitRequest, context: Context) -> pb.DebitResponse:
        return await self._mutate("debit", request)  # type: ignore[no-any-return]

    async def Hold(self, request: pb.HoldRequest, context: Context) -> pb.HoldResponse:
        return await self._mutate("hold", request)  # type: ignore[no-any-return]

    async def CaptureHold(
        self, request: pb.CaptureHoldRequest, context: Context
    ) -> pb.CaptureHoldResponse:
        return await self._mutate("capture_hold", request)  # type: ignore[no-any-return]

    async def ReleaseHold(
        self, request: pb.ReleaseHoldRequest, context: Context
    ) -> pb.ReleaseHoldResponse:
        return await self._mutate("release_hold", request)  # type: ignore[no-any-return]

    async def Reverse(self, request: pb.ReverseRequest, context: Context) -> pb.ReverseResponse:
        return await self._mutate("reverse", request)  # type: ignore[no-any-return]

    async def PostBatch(
        self, request: pb.PostBatchRequest, context: Context
    ) -> pb.PostBatchResponse:
        count = len(request.operations)
        if not 0 < count <= MAX_BATCH:
            raise InvalidArgument.fields(
                [FieldViolation("operations", f"must hold 1 to {MAX_BATCH} operations")]
            )
        results: list[pb.BatchResult | None] = [None] * count
        batch: list[Op] = []
        positions: list[int] = []
        for index, operation in enumerate(request.operations):
            which = operation.WhichOneof("operation")
            if which is None:
                error = InvalidArgument.fields(
                    [FieldViolation(f"operations[{index}]", "no operation set")]
                )
                results[index] = pb.BatchResult(error=error.as_message())
                continue
            batch.append(Op(self.mutations[which], getattr(operation, which)))
            positions.append(index)
        async with self.pool.acquire() as conn:
            outcomes = await self.engine.run(conn, batch)
        for index, op, outcome in zip(positions, batch, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                results[index] = pb.BatchResult(error=outcome.as_message())
            else:
                result = pb.BatchResult()
                field = next(k for k, m in self.mutations.items() if m is op.mutation)
                getattr(result, field).CopyFrom(outcome)
                results[index] = result
        return pb.PostBatchResponse(results=[r for r in results if r is not None])

    async def _balances(self, user_ids: list[str], days: int) -> list[pb.Balance]:
        validation.check_expiring_days(days)
        async with self.pool.acquire() as conn:
            rows, expiring = await repo.balances(conn, user_ids, days, self.config.zone.key)
        return [convert.balance(rows[u], expiring[u]) for u in user_ids]

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: Context
    ) -> pb.GetBalanceResponse:
        checker = validation.Checker()
        checker.user_id(request.user_id)
        checker.require(
            0 <= request.recent_transfers <= MAX_RECENT, "recent_transfers", "must be 0 to 50"
        )
        checker.done()
        if not request.recent_transfers:
            [balance] = await self._balances([request.user_id], request.expiring_within_days)
            return pb.GetBalanceResponse(balance=balance)
        validation.check_expiring_days(request.expiring_within_days)
        async with self.pool.acquire() as conn:
            rows, expiring = await repo.balances(
                conn, [request.user_id], request.expiring_within_days, self.config.zone.key
            )
            recent = await queries.list_transfers(
                conn, request.user_id, request.recent_transfers, None, (), None, None
            )
        return pb.GetBalanceResponse(
            balance=convert.balance(rows[request.user_id], expiring[request.user_id]),
            recent=[convert.transfer(r, r["lot_expires_at"], r["lot_matures_at"]) for r in recent],
        )

    async def BatchGetBalances(
        self, request: pb.BatchGetBalancesRequest, context: Context
    ) -> pb.BatchGetBalancesResponse:
        checker = validation.Checker()
        checker.require(
            0 < len(request.user_ids) <= 1000, "user_ids", "must hold 1 to 1000 user ids"
        )
        for index, user_id in enumerate(request.user_ids):
            checker.user_id(user_id, f"user_ids[{index}]")
        checker.done()
        balances = await self._balances(list(request.user_ids), request.expiring_within_days)
        return pb.BatchGetBalancesResponse(balances=balances)

    async def ListTransfers(
        self, request: pb.ListTransfersRequest, context: Context
    ) -> pb.ListTransfersResponse:
        checker = validation.Checker()
        checker.user_id(request.user_id)
        pager = Pager(checker, LIST, request.page_size, request.page_token)
        kinds = []
        for kind in request.kinds:
            if kind == pb.TRANSFER_KIND_UNSPECIFIED or kind not in pb.TransferKind.values():
                checker.fail("kinds", f"unknown transfer kind {kind}")
            else:
                kinds.append(convert.kind_name(kind))
        checker.done()
        before = token_number(pager.after[0]) if pager.after else None
        span = request.time_range
        async with self.pool.acquire() as conn:
            rows = await queries.list_transfers(
                conn,
                request.user_id,
                pager.fetch,
                before,
                kinds,
                from_timestamp(span.start_time) if span.HasField("start_time") else None,
                from_timestamp(span.end_time) if span.HasField("end_time") else None,
            )
        page, token = pager.page(rows, lambda r: [str(r["transfer_id"])])
        return pb.ListTransfersResponse(
            transfers=[convert.transfer(r, r["lot_expires_at"], r["lot_matures_at"]) for r in page],
            next_page_token=token,
        )

    async def WatchBalance(
        self, request: pb.WatchBalanceRequest, context: Context
    ) -> AsyncIterator[pb.WatchBalanceResponse]:
        checker = validation.Checker()
        checker.user_id(request.user_id)
        checker.done()
        async with self.watchers.watch(request.user_id) as changed:
            [balance] = await self._balances([request.user_id], 0)
            yield pb.WatchBalanceResponse(balance=balance)
            while True:
                await changed.get()
                [balance] = await self._balances([request.user_id], 0)
                yield pb.WatchBalanceResponse(balance=balance)

    async def ExpirePoints(
        self, request: pb.ExpirePointsRequest, context: Context
    ) -> pb.ExpirePointsResponse:
        checker = validation.Checker()
        checker.request_id(request.request_id)
        checker.done()
        fingerprint = idempotency.fingerprint("ExpirePoints", request)
        async with self.pool.acquire() as conn:
            prior = await _recorded_expiry(conn, request.request_id, fingerprint)
            if prior is not None:
                return prior
            now = await current_time(conn)
        as_of = from_timestamp(request.as_of_time) if request.HasField("as_of_time") else now
        if as_of > now:
            raise InvalidArgument.fields(
                [FieldViolation("as_of_time", "must not be in the future")]
            )
        # Runs in chunks of members, each its own transaction; re-running resumes safely.
        totals = await expire_due(self.pool, as_of, request.request_id)
        response = pb.ExpirePointsResponse(
            lots_expired=totals.lots, points_expired=totals.points, members_affected=totals.members
        )
        async with self.pool.acquire() as conn:
            try:
                await requests_repo.record_response(
                    conn, SYSTEM_SCOPE, request.request_id, "ExpirePoints", fingerprint, response
                )
            except asyncpg.UniqueViolationError:
                # A concurrent run with the same id finished first: answer as it did.
                prior = await _recorded_expiry(conn, request.request_id, fingerprint)
                assert prior is not None
                return prior
        return response

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: Context
    ) -> pb.ListMembersResponse:
        checker = validation.Checker()
        checker.require(request.min_available >= 0, "min_available", "must be >= 0")
        checker.text("user_id_prefix", request.user_id_prefix, MAX_USER_ID, required=False)
        pager = Pager(checker, EXPORT, request.page_size, request.page_token)
        checker.done()
        after = pager.after[0] if pager.after else ""
        segment = queries.Segment(
            request.min_available,
            request.user_id_prefix,
            from_timestamp(request.changed_before) if request.HasField("changed_before") else None,
        )
        async with self.pool.acquire() as conn:
            # A scan: the next page starts after the last member scanned, matched or not.
            users, next_after = await queries.members_at_least(conn, segment, after, pager.limit)
        return pb.ListMembersResponse(
            members=await self._balances(users, 0) if users else [],
            next_page_token=encode_token(next_after) if next_after is not None else "",
        )

    async def GetStats(self, request: pb.GetStatsRequest, context: Context) -> pb.GetStatsResponse:
        span = request.time_range
        start = from_timestamp(span.start_time) if span.HasField("start_time") else None
        end = from_timestamp(span.end_time) if span.HasField("end_time") else None
        if request.by_day and start is None:
            raise InvalidArgument.fields(
                [FieldViolation("time_range.start_time", "is required with by_day")]
            )
        days = []
        async with self.pool.acquire() as conn:
            totals, by_source = await queries.stats(conn, start, end)
            if request.by_day and start is not None:
                days = await queries.daily_flows(conn, start, end, self.config.zone.key)
            run = await queries.last_expiry_run(conn)
        return pb.GetStatsResponse(
            last_expiry_run=None
            if run is None
            else pb.ExpiryRun(
                request_id=run["request_id"],
                as_of_time=to_timestamp(run["as_of"]),
                start_time=to_timestamp(run["started_at"]),
                finish_time=to_timestamp(run["finished_at"]),
                lots_expired=run["lots"],
                points_expired=run["points"],
                members_affected=run["members"],
            ),
            days=[
                pb.DayStats(
                    date=d["day"].isoformat(),
                    issued=d["issued"],
                    spent=d["spent"],
                    expired=d["expired"],
                    reversed=d["reversed"],
                )
                for d in days
            ],
            outstanding_liability=totals["liability"],
            issued=totals["issued"],
            spent=totals["spent"],
            expired=totals["expired"],
            reversed=totals["reversed"],
            by_source=[
                pb.SourceStats(source=r["source"], issued=r["issued"], reversed=r["reversed"])
                for r in by_source
            ],
        )

    async def Audit(self, request: pb.AuditRequest, context: Context) -> pb.AuditResponse:
        async with self.pool.acquire() as conn:
            violations, members, lots = await queries.audit(conn)
        return pb.AuditResponse(
            ok=not violations,
            violations=[
                pb.Violation(
                    invariant=v["invariant"], user_id=v["user_id"] or "", detail=v["detail"]
                )
                for v in violations
            ],
            members_checked=members,
            lots_checked=lots,
        )

    async def FindSpenders(
        self, request: pb.FindSpendersRequest, context: Context
    ) -> pb.FindSpendersResponse:
        checker = validation.Checker()
        count = len(request.user_ids)
        checker.require(0 < count <= MAX_SPENDERS, "user_ids", f"must hold 1 to {MAX_SPENDERS}")
        checker.require(
            len(request.since_times) == count, "since_times", "must hold one time per user id"
        )
        for index, user_id in enumerate(request.user_ids):
            checker.user_id(user_id, f"user_ids[{index}]")
        checker.done()
        since = [from_timestamp(t) for t in request.since_times]
        end = from_timestamp(request.end_time) if request.HasField("end_time") else None
        async with self.pool.acquire() as conn:
            found = await queries.spenders(conn, list(request.user_ids), since, end)
        return pb.FindSpendersResponse(user_ids=[u for u in request.user_ids if u in found])


async def _recorded_expiry(
    conn: Conn, request_id: str, fingerprint: bytes
) -> pb.ExpirePointsResponse | None:
    prior = await idempotency.replay(
        conn, SYSTEM_SCOPE, request_id, fingerprint, "ExpirePoints", pb.ExpirePointsResponse
    )
    if isinstance(prior, DomainError):
        raise prior
    return prior
