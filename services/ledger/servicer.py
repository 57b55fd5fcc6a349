"""The gRPC edge of the ledger: validate, run the operation exactly once, shape the reply."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import grpc

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc as pb_grpc
from services.common.db import Conn
from services.common.errors import DomainError, FieldViolation, InvalidArgument
from services.common.timestamps import from_timestamp
from services.ledger import convert, idempotency, queries, validation
from services.ledger import repository as repo
from services.ledger.config import LedgerConfig
from services.ledger.expiry import expire_due
from services.ledger.operations import Operations
from services.ledger.watch import BalanceWatchers

Context = grpc.aio.ServicerContext[Any, Any]
MAX_BATCH = 5000
SYSTEM_SCOPE = ""  # requests not tied to one member (expiry runs) use this user id


@dataclass(frozen=True)
class Mutation:
    method: str
    check: Callable[[Any], None]
    apply: Callable[[Conn, datetime, Any], Awaitable[Any]]
    response_type: type[Any]


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(self, pool: asyncpg.Pool, config: LedgerConfig, watchers: BalanceWatchers):
        self.pool = pool
        self.config = config
        self.ops = Operations(config)
        self.watchers = watchers
        self.mutations = {
            "credit": Mutation(
                "Credit", validation.check_credit, self.ops.credit, pb.CreditResponse
            ),
            "debit": Mutation("Debit", validation.check_debit, self.ops.debit, pb.DebitResponse),
            "hold": Mutation("Hold", validation.check_hold, self.ops.hold, pb.HoldResponse),
            "capture_hold": Mutation(
                "CaptureHold",
                validation.check_capture,
                self.ops.capture_hold,
                pb.CaptureHoldResponse,
            ),
            "release_hold": Mutation(
                "ReleaseHold",
                validation.check_release,
                self.ops.release_hold,
                pb.ReleaseHoldResponse,
            ),
            "reverse": Mutation(
                "Reverse", validation.check_reverse, self.ops.reverse, pb.ReverseResponse
            ),
        }

    async def _run(self, conn: Conn, mutation: Mutation, request: Any) -> Any:
        mutation.check(request)
        return await idempotency.execute_once(
            conn,
            user_id=request.user_id,
            request_id=request.request_id,
            method=mutation.method,
            request=request,
            response_type=mutation.response_type,
            body=lambda c, now: mutation.apply(c, now, request),
        )

    async def _mutate(self, name: str, request: Any) -> Any:
        async with self.pool.acquire() as conn:
            return await self._run(conn, self.mutations[name], request)

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
        chosen = [op.WhichOneof("operation") for op in request.operations]
        users = sorted(
            {
                getattr(op, which).user_id
                for op, which in zip(request.operations, chosen, strict=True)
                if which is not None and getattr(op, which).user_id
            }
        )
        results: list[pb.BatchResult] = []
        async with self.pool.acquire() as conn, conn.transaction():
            # Lock every member up front, in one order, so concurrent batches cannot deadlock.
            await repo.lock_members(conn, [u for u in users if len(u) <= 128])
            for index, (op, which) in enumerate(zip(request.operations, chosen, strict=True)):
                if which is None:
                    error = InvalidArgument.fields(
                        [FieldViolation(f"operations[{index}]", "no operation set")]
                    )
                    results.append(pb.BatchResult(error=_batch_error(error)))
                    continue
                try:
                    response = await self._run(conn, self.mutations[which], getattr(op, which))
                except DomainError as exc:
                    results.append(pb.BatchResult(error=_batch_error(exc)))
                else:
                    results.append(pb.BatchResult(**{which: response}))
        return pb.PostBatchResponse(results=results)

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
        checker.done()
        [balance] = await self._balances([request.user_id], request.expiring_within_days)
        return pb.GetBalanceResponse(balance=balance)

    async def BatchGetBalances(
        self, request: pb.BatchGetBalancesRequest, context: Context
    ) -> pb.BatchGetBalancesResponse:
        checker = validation.Checker()
        if not 0 < len(request.user_ids) <= 1000:
            checker.fail("user_ids", "must hold 1 to 1000 user ids")
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
        checker.page_size(request.page_size, 500)
        kinds = []
        for kind in request.kinds:
            if kind == pb.TRANSFER_KIND_UNSPECIFIED or kind not in pb.TransferKind.values():
                checker.fail("kinds", f"unknown transfer kind {kind}")
            else:
                kinds.append(convert.kind_name(kind))
        checker.done()
        before = None
        if request.page_token:
            token = queries.decode_token(request.page_token)
            if not token.isdigit():
                raise InvalidArgument.fields([FieldViolation("page_token", "is not valid")])
            before = int(token)
        limit = request.page_size or 50
        span = request.time_range
        async with self.pool.acquire() as conn:
            rows = await queries.list_transfers(
                conn,
                request.user_id,
                limit,
                before,
                kinds,
                from_timestamp(span.start_time) if span.HasField("start_time") else None,
                from_timestamp(span.end_time) if span.HasField("end_time") else None,
            )
        page = rows[:limit]
        response = pb.ListTransfersResponse(transfers=[convert.transfer(r) for r in page])
        if len(rows) > limit:
            response.next_page_token = queries.encode_token(str(page[-1]["transfer_id"]))
        return response

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
            prior = await idempotency.replay(
                conn, SYSTEM_SCOPE, request.request_id, fingerprint, pb.ExpirePointsResponse
            )
            if isinstance(prior, DomainError):
                raise prior
            if prior is not None:
                return prior
            now: datetime = await conn.fetchval("SELECT now()")
        as_of = from_timestamp(request.as_of_time) if request.HasField("as_of_time") else now
        if as_of > now:
            raise InvalidArgument.fields(
                [FieldViolation("as_of_time", "must not be in the future")]
            )
        totals = await expire_due(self.pool, as_of, request.request_id)
        response = pb.ExpirePointsResponse(
            lots_expired=totals.lots, points_expired=totals.points, members_affected=totals.members
        )
        async with self.pool.acquire() as conn:
            try:
                await repo.save_request(
                    conn,
                    SYSTEM_SCOPE,
                    request.request_id,
                    "ExpirePoints",
                    fingerprint,
                    response.SerializeToString(),
                    None,
                    False,
                )
            except asyncpg.UniqueViolationError:
                # A concurrent run with the same id finished first: answer as it did.
                prior = await idempotency.replay(
                    conn, SYSTEM_SCOPE, request.request_id, fingerprint, pb.ExpirePointsResponse
                )
                if isinstance(prior, DomainError):
                    raise prior from None
                assert prior is not None
                return prior
        return response

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: Context
    ) -> pb.ListMembersResponse:
        checker = validation.Checker()
        if request.min_available < 0:
            checker.fail("min_available", "must be >= 0")
        checker.page_size(request.page_size, 1000)
        checker.done()
        after = queries.decode_token(request.page_token) if request.page_token else ""
        limit = request.page_size or 100
        async with self.pool.acquire() as conn:
            users, next_after = await queries.members_at_least(
                conn, request.min_available, after, limit
            )
        response = pb.ListMembersResponse(members=await self._balances(users, 0) if users else [])
        if next_after is not None:
            response.next_page_token = queries.encode_token(next_after)
        return response

    async def GetStats(self, request: pb.GetStatsRequest, context: Context) -> pb.GetStatsResponse:
        span = request.time_range
        async with self.pool.acquire() as conn:
            totals, by_source = await queries.stats(
                conn,
                from_timestamp(span.start_time) if span.HasField("start_time") else None,
                from_timestamp(span.end_time) if span.HasField("end_time") else None,
            )
        return pb.GetStatsResponse(
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


def _batch_error(error: DomainError) -> common_pb2.Error:
    return common_pb2.Error(
        code=error.code.value[0],
        reason=error.reason,
        message=error.message,
        metadata=dict(error.metadata),
    )
