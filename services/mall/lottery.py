"""Provably fair lotteries.

Each lottery has a server seed whose SHA-256 is public before any draw uses it. A draw's roll
is the first 8 bytes of HMAC-SHA256(seed, "user_id:nonce"), the nonce counting the user's
draws; the roll modulo the table's total weight lands on a prize (the "no prize" slot last).
A prize out of stock or past its daily cap is never won: landing on it wins nothing. When the
seed is rotated it is revealed, and anyone can recompute every draw it made.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Sequence

import asyncpg
import grpc
from asyncpg import Record

from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2 as pb
from services.common.db import Conn
from services.common.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    parse_rpc_error,
)
from services.common.validation import storable
from services.mall import catalog
from services.mall import repository as repo
from services.mall.config import MallConfig
from services.mall.saga import new_code

log = logging.getLogger(__name__)
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
Table = Sequence[tuple[str, int, bool]]  # (prize_id, weight, available), in table order


def roll(seed: bytes, user_id: str, nonce: int) -> int:
    digest = hmac.new(seed, f"{user_id}:{nonce}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def choose(value: int, table: Table, no_prize_weight: int) -> tuple[int, str]:
    """Where the roll lands, and the prize won there ("" for none)."""
    total = no_prize_weight + sum(weight for _, weight, _ in table)
    pick = value % total
    cumulative = 0
    for prize_id, weight, available in table:
        cumulative += weight
        if pick < cumulative:
            return pick, prize_id if available else ""
    return pick, ""


def check_lottery(lottery: pb.Lottery) -> None:
    bad: list[FieldViolation] = []
    if not _ID.match(lottery.lottery_id):
        bad.append(FieldViolation("lottery.lottery_id", "lower-case letters, digits, '_.-'"))
    if not storable(lottery.title, 200):
        bad.append(FieldViolation("lottery.title", "is required"))
    if lottery.points_per_draw <= 0:
        bad.append(FieldViolation("lottery.points_per_draw", "must be > 0"))
    if lottery.daily_draws_per_user < 0 or lottery.no_prize_weight < 0:
        bad.append(FieldViolation("lottery.no_prize_weight", "limits and weights must be >= 0"))
    ids = [p.prize_id for p in lottery.prizes]
    if len(set(ids)) != len(ids):
        bad.append(FieldViolation("lottery.prizes", "prize ids must be unique"))
    for index, prize in enumerate(lottery.prizes):
        field = f"lottery.prizes[{index}]"
        if not _ID.match(prize.prize_id):
            bad.append(FieldViolation(f"{field}.prize_id", "is required"))
        if prize.weight <= 0:
            bad.append(FieldViolation(f"{field}.weight", "must be > 0"))
        if prize.kind == pb.PRIZE_KIND_POINTS and prize.points <= 0:
            bad.append(FieldViolation(f"{field}.points", "a points prize needs points > 0"))
        elif prize.kind == pb.PRIZE_KIND_COUPON and prize.coupon_value.amount_minor <= 0:
            bad.append(FieldViolation(f"{field}.coupon_value", "a coupon prize needs a value"))
        elif prize.kind == pb.PRIZE_KIND_ITEM and not _ID.match(prize.item_id):
            bad.append(FieldViolation(f"{field}.item_id", "an item prize needs an item id"))
        elif prize.kind not in (pb.PRIZE_KIND_POINTS, pb.PRIZE_KIND_COUPON, pb.PRIZE_KIND_ITEM):
            bad.append(FieldViolation(f"{field}.kind", "must be POINTS, COUPON or ITEM"))
        if prize.stock < 0 or prize.daily_cap < 0:
            bad.append(FieldViolation(f"{field}.stock", "stock and daily_cap must be >= 0"))
    if not lottery.prizes and lottery.no_prize_weight == 0:
        bad.append(FieldViolation("lottery.prizes", "a lottery needs some weight"))
    if bad:
        raise InvalidArgument.fields(bad)


def _sha256(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


class Lotteries:
    def __init__(
        self,
        pool: asyncpg.Pool,
        config: MallConfig,
        ledger: ledger_pb2_grpc.LedgerServiceAsyncStub,
        timeout: float = 5.0,
    ) -> None:
        self.pool = pool
        self.config = config
        self.ledger = ledger
        self.timeout = timeout

    async def upsert(self, lottery: pb.Lottery) -> str:
        check_lottery(lottery)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """
                INSERT INTO lotteries (lottery_id, enabled, definition) VALUES ($1, $2, $3)
                ON CONFLICT (lottery_id) DO UPDATE SET enabled = EXCLUDED.enabled,
                    definition = EXCLUDED.definition, updated_at = now()
                """,
                lottery.lottery_id,
                lottery.enabled,
                lottery.SerializeToString(),
            )
            await conn.execute(
                "DELETE FROM lottery_prizes WHERE lottery_id = $1", lottery.lottery_id
            )
            await conn.executemany(
                "INSERT INTO lottery_prizes (lottery_id, prize_id, stock) VALUES ($1, $2, $3)",
                [
                    (lottery.lottery_id, p.prize_id, None if p.unlimited_stock else p.stock)
                    for p in lottery.prizes
                ],
            )
            return str((await self._current_seed(conn, lottery.lottery_id))["seed_sha256"])

    async def _current_seed(self, conn: Conn, lottery_id: str) -> Record:
        row = await conn.fetchrow(
            "SELECT * FROM lottery_seeds WHERE lottery_id = $1 AND revealed_at IS NULL "
            "ORDER BY seed_id DESC LIMIT 1",
            lottery_id,
        )
        if row is not None:
            return row
        seed = secrets.token_bytes(32)
        created = await conn.fetchrow(
            """
            INSERT INTO lottery_seeds (lottery_id, seed_id, seed, seed_sha256)
            SELECT $1, coalesce(max(seed_id), 0) + 1, $2, $3 FROM lottery_seeds
            WHERE lottery_id = $1
            RETURNING *
            """,
            lottery_id,
            seed,
            _sha256(seed),
        )
        assert created is not None
        return created

    async def _lottery(self, conn: Conn, lottery_id: str) -> pb.Lottery:
        row = await conn.fetchrow("SELECT * FROM lotteries WHERE lottery_id = $1", lottery_id)
        if row is None:
            raise NotFound(
                "LOTTERY_NOT_FOUND", f"no lottery {lottery_id}", {"lottery_id": lottery_id}
            )
        lottery = pb.Lottery.FromString(row["definition"])
        stock = {
            r["prize_id"]: r["stock"]
            for r in await conn.fetch(
                "SELECT prize_id, stock FROM lottery_prizes WHERE lottery_id = $1", lottery_id
            )
        }
        for prize in lottery.prizes:
            if stock.get(prize.prize_id) is not None:
                prize.stock = stock[prize.prize_id]
        return lottery

    async def get(self, lottery_id: str) -> pb.GetLotteryResponse:
        async with self.pool.acquire() as conn, conn.transaction():
            lottery = await self._lottery(conn, lottery_id)
            current = await self._current_seed(conn, lottery_id)
            revealed = await conn.fetch(
                "SELECT * FROM lottery_seeds WHERE lottery_id = $1 AND revealed_at IS NOT NULL "
                "ORDER BY seed_id DESC",
                lottery_id,
            )
        in_stock = [p for p in lottery.prizes if p.unlimited_stock or p.stock > 0]
        total = lottery.no_prize_weight + sum(p.weight for p in lottery.prizes)
        cost = sum(p.weight * p.points for p in in_stock if p.kind == pb.PRIZE_KIND_POINTS)
        return pb.GetLotteryResponse(
            lottery=lottery,
            current_seed_sha256=current["seed_sha256"],
            revealed_seeds=[
                pb.RevealedSeed(
                    seed_id=r["seed_id"], seed_hex=r["seed"].hex(), seed_sha256=r["seed_sha256"]
                )
                for r in revealed
            ],
            expected_points_cost_per_draw_milli=cost * 1000 // total if total else 0,
        )

    async def rotate(self, lottery_id: str) -> pb.RotateSeedResponse:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lottery(conn, lottery_id)
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"points.lottery.{lottery_id}",
            )
            current = await self._current_seed(conn, lottery_id)
            await conn.execute(
                "UPDATE lottery_seeds SET revealed_at = now() "
                "WHERE lottery_id = $1 AND seed_id = $2",
                lottery_id,
                current["seed_id"],
            )
            new = await self._current_seed(conn, lottery_id)
        return pb.RotateSeedResponse(
            revealed=pb.RevealedSeed(
                seed_id=current["seed_id"],
                seed_hex=current["seed"].hex(),
                seed_sha256=current["seed_sha256"],
            ),
            current_seed_sha256=new["seed_sha256"],
        )

    async def draw(self, request: pb.DrawRequest) -> pb.DrawResult:
        async with self.pool.acquire() as conn:
            done = await conn.fetchrow(
                "SELECT * FROM draws WHERE user_id = $1 AND request_id = $2",
                request.user_id,
                request.request_id,
            )
        if done is not None:
            return await self._result_or_error(done)
        return await self._settle(await self._draw(request))

    async def _settle(self, row: Record) -> pb.DrawResult:
        """Charge the draw and pay its prize (idempotent ledger calls), then complete it.
        A draw left here by a crash is settled by `recover_forever`."""
        try:
            await self.ledger.Debit(
                lpb.DebitRequest(
                    request_id=f"lottery:{row['draw_id']}:cost",
                    user_id=row["user_id"],
                    amount=row["cost"],
                    reason_code="LOTTERY_DRAW",
                    metadata={"lottery_id": row["lottery_id"]},
                ),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if parse_rpc_error(exc).reason == "INSUFFICIENT_POINTS":
                await self._void(row)
                raise FailedPrecondition(
                    "INSUFFICIENT_POINTS",
                    "not enough points to draw",
                    {"points_per_draw": str(row["cost"])},
                ) from None
            raise
        if row["points_won"]:
            await self.ledger.Credit(
                lpb.CreditRequest(
                    request_id=f"lottery:{row['draw_id']}:prize",
                    user_id=row["user_id"],
                    amount=row["points_won"],
                    source=f"lottery:{row['lottery_id']}",
                    reason_code="LOTTERY_PRIZE",
                ),
                timeout=self.timeout,
            )
        async with self.pool.acquire() as conn:
            completed = await conn.fetchrow(
                "UPDATE draws SET state = 'COMPLETED' WHERE user_id = $1 AND draw_id = $2 "
                "RETURNING *",
                row["user_id"],
                row["draw_id"],
            )
        assert completed is not None
        return await self.result(completed)

    async def recover_forever(self) -> None:
        """Settle draws a crash or an outage left between drawing and charging."""
        while True:
            await asyncio.sleep(self.config.recovery_seconds)
            async with self.pool.acquire() as conn:
                stuck = await conn.fetch(
                    """
                    SELECT d.*, (l.definition) AS lottery FROM draws d
                    JOIN lotteries l USING (lottery_id)
                    WHERE d.state = 'DRAWN'
                      AND d.created_at <= now() - make_interval(secs => $1)
                    ORDER BY d.created_at LIMIT 100
                    """,
                    self.config.recovery_after_seconds,
                )
            for row in stuck:
                cost = pb.Lottery.FromString(row["lottery"]).points_per_draw
                try:
                    await self._settle({**dict(row), "cost": cost})  # type: ignore[arg-type]
                except (DomainError, grpc.aio.AioRpcError, asyncpg.PostgresError) as exc:
                    log.warning(
                        "draw not settled yet", extra={"draw_id": row["draw_id"], "error": str(exc)}
                    )

    async def _draw(self, request: pb.DrawRequest) -> Record:
        """Pick the outcome and take the prize from stock, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            now = await repo.lock_user(conn, request.user_id)
            lottery = await self._lottery(conn, request.lottery_id)
            if not lottery.enabled:
                raise FailedPrecondition(
                    "LOTTERY_NOT_AVAILABLE",
                    "the lottery is closed",
                    {"lottery_id": request.lottery_id},
                )
            day = now.astimezone(self.config.zone).date()
            drawn = await conn.fetchval(
                "SELECT count(*) FROM draws WHERE user_id = $1 AND lottery_id = $2 "
                "AND day = $3 AND state <> 'FAILED'",
                request.user_id,
                request.lottery_id,
                day,
            )
            if lottery.daily_draws_per_user and drawn >= lottery.daily_draws_per_user:
                raise FailedPrecondition(
                    "USER_LIMIT_REACHED",
                    "no draws left today",
                    {"daily_draws_per_user": str(lottery.daily_draws_per_user)},
                )
            nonce = await conn.fetchval(
                "SELECT coalesce(max(nonce), 0) + 1 FROM draws "
                "WHERE user_id = $1 AND lottery_id = $2",
                request.user_id,
                request.lottery_id,
            )
            seed = await self._current_seed(conn, request.lottery_id)
            won = {
                r["prize_id"]: r["won"]
                for r in await conn.fetch(
                    "SELECT prize_id, won FROM lottery_prize_days "
                    "WHERE lottery_id = $1 AND day = $2",
                    request.lottery_id,
                    day,
                )
            }
            table = [
                (
                    p.prize_id,
                    p.weight,
                    (p.unlimited_stock or p.stock > 0)
                    and not (p.daily_cap and won.get(p.prize_id, 0) >= p.daily_cap),
                )
                for p in lottery.prizes
            ]
            value = roll(bytes(seed["seed"]), request.user_id, nonce)
            pick, prize_id = choose(value, table, lottery.no_prize_weight)
            if prize_id and not await self._take(conn, request.lottery_id, prize_id, day):
                # Another draw took the last unit a moment ago: it is unavailable after all.
                table = [(i, w, a and i != prize_id) for i, w, a in table]
                pick, prize_id = choose(value, table, lottery.no_prize_weight)
            prize = next((p for p in lottery.prizes if p.prize_id == prize_id), None)
            code = new_code() if prize is not None and prize.kind == pb.PRIZE_KIND_COUPON else None
            row = await conn.fetchrow(
                """
                INSERT INTO draws (user_id, request_id, lottery_id, nonce, seed_id, roll, pick,
                                   prize_table, no_prize_weight, prize_id, points_won,
                                   coupon_code, day)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13)
                RETURNING *, $14::bigint AS cost
                """,
                request.user_id,
                request.request_id,
                request.lottery_id,
                nonce,
                seed["seed_id"],
                value,
                pick,
                json.dumps(table),
                lottery.no_prize_weight,
                prize_id,
                prize.points if prize is not None and prize.kind == pb.PRIZE_KIND_POINTS else 0,
                code,
                day,
                lottery.points_per_draw,
            )
            if code is not None and prize is not None:
                await conn.execute(
                    """
                    INSERT INTO coupons (user_id, code, value_minor, min_spend_minor, currency)
                    VALUES ($1, $2, $3, $4, $5)
                    """,
                    request.user_id,
                    code,
                    prize.coupon_value.amount_minor,
                    prize.coupon_min_spend.amount_minor,
                    prize.coupon_value.currency,
                )
            assert row is not None
            if prize is not None and prize.kind == pb.PRIZE_KIND_ITEM:
                row = await self._item_prize(conn, row, prize.item_id, request.shipping_address)
        assert row is not None
        return row

    async def _item_prize(
        self, conn: Conn, draw: Record, item_id: str, shipping_address: str
    ) -> Record:
        """Fulfil an item prize like a redemption (no points: the draw paid for it)."""
        item_row = await conn.fetchrow("SELECT * FROM items WHERE item_id = $1", item_id)
        item_type = item_row["item_type"] if item_row is not None else "ITEM_TYPE_VIRTUAL"
        shipped = item_type in catalog.SHIPPED
        redemption_id = await conn.fetchval(
            """
            INSERT INTO redemptions (user_id, request_id, payload_sha256, item_id, item_type,
                                     quantity, points, step, code, shipment_status,
                                     shipping_address)
            VALUES ($1, $2, '\\x00', $3, $4, 1, 0, 'COMPLETED', $5, $6, $7)
            RETURNING redemption_id
            """,
            draw["user_id"],
            f"lottery:{draw['draw_id']}",
            item_id,
            item_type,
            None if shipped else new_code(),
            "PENDING" if shipped else None,
            shipping_address,
        )
        updated = await conn.fetchrow(
            "UPDATE draws SET redemption_id = $3 WHERE user_id = $1 AND draw_id = $2 "
            "RETURNING *, $4::bigint AS cost",
            draw["user_id"],
            draw["draw_id"],
            redemption_id,
            draw["cost"],
        )
        assert updated is not None
        return updated

    async def _take(self, conn: Conn, lottery_id: str, prize_id: str, day: object) -> bool:
        taken = await conn.fetchval(
            "UPDATE lottery_prizes SET stock = stock - 1 WHERE lottery_id = $1 AND prize_id = $2 "
            "AND (stock IS NULL OR stock > 0) RETURNING true",
            lottery_id,
            prize_id,
        )
        if not taken:
            return False
        await conn.execute(
            """
            INSERT INTO lottery_prize_days AS d (lottery_id, prize_id, day, won)
            VALUES ($1, $2, $3, 1)
            ON CONFLICT (lottery_id, prize_id, day) DO UPDATE SET won = d.won + 1
            """,
            lottery_id,
            prize_id,
            day,
        )
        return True

    async def _void(self, row: Record) -> None:
        """Undo a draw that could not be paid for: its prize goes back, nothing was won."""
        async with self.pool.acquire() as conn, conn.transaction():
            voided = await conn.fetchval(
                "UPDATE draws SET state = 'FAILED' WHERE user_id = $1 AND draw_id = $2 "
                "AND state = 'DRAWN' RETURNING true",
                row["user_id"],
                row["draw_id"],
            )
            if voided and row["prize_id"]:
                await conn.execute(
                    "UPDATE lottery_prizes SET stock = stock + 1 "
                    "WHERE lottery_id = $1 AND prize_id = $2 AND stock IS NOT NULL",
                    row["lottery_id"],
                    row["prize_id"],
                )
                await conn.execute(
                    "UPDATE lottery_prize_days SET won = won - 1 "
                    "WHERE lottery_id = $1 AND prize_id = $2 AND day = $3",
                    row["lottery_id"],
                    row["prize_id"],
                    row["day"],
                )
                await conn.execute(
                    "UPDATE coupons SET state = 'REVOKED' WHERE user_id = $1 AND code = $2",
                    row["user_id"],
                    row["coupon_code"],
                )

    async def _result_or_error(self, row: Record) -> pb.DrawResult:
        if row["state"] == "FAILED":
            raise FailedPrecondition(
                "INSUFFICIENT_POINTS", "not enough points to draw", {"draw_id": str(row["draw_id"])}
            )
        return await self.result(row)

    async def result(self, row: Record) -> pb.DrawResult:
        async with self.pool.acquire() as conn:
            seed_hash = await conn.fetchval(
                "SELECT seed_sha256 FROM lottery_seeds WHERE lottery_id = $1 AND seed_id = $2",
                row["lottery_id"],
                row["seed_id"],
            )
        return pb.DrawResult(
            draw_id=str(row["draw_id"]),
            lottery_id=row["lottery_id"],
            user_id=row["user_id"],
            nonce=row["nonce"],
            seed_id=row["seed_id"],
            seed_sha256=seed_hash,
            prize_id=row["prize_id"],
            points_won=row["points_won"],
            coupon_code=row["coupon_code"] or "",
            roll=int(row["roll"]),
            pick=row["pick"],
            redemption_id=str(row["redemption_id"] or ""),
        )

    async def verify(self, user_id: str, draw_id: int) -> pb.VerifyDrawResponse:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM draws WHERE user_id = $1 AND draw_id = $2", user_id, draw_id
            )
            if row is None:
                raise NotFound("DRAW_NOT_FOUND", f"no draw {draw_id}", {"draw_id": str(draw_id)})
            seed = await conn.fetchrow(
                "SELECT * FROM lottery_seeds WHERE lottery_id = $1 AND seed_id = $2",
                row["lottery_id"],
                row["seed_id"],
            )
        assert seed is not None
        value = roll(bytes(seed["seed"]), user_id, row["nonce"])
        table = [(i, int(w), bool(a)) for i, w, a in json.loads(row["prize_table"])]
        pick, prize_id = choose(value, table, row["no_prize_weight"])
        matches = (
            value == int(row["roll"])
            and pick == row["pick"]
            and prize_id == row["prize_id"]
            and _sha256(bytes(seed["seed"])) == seed["seed_sha256"]
        )
        return pb.VerifyDrawResponse(
            matches=matches,
            result=await self.result(row),
            seed_hex=bytes(seed["seed"]).hex() if seed["revealed_at"] is not None else "",
        )
