"""Provably fair lotteries.

Each lottery has a server seed whose SHA-256 is public before any draw uses it. A draw's roll
is the first 8 bytes of HMAC-SHA256(seed, "user_id:nonce"), the nonce counting the user's
draws; the roll modulo the table's total weight lands on a prize (the "no prize" slot last).
A prize out of stock or past its daily cap is never won: landing on it wins nothing. When the
seed is rotated it is revealed, and anyone can recompute every draw it made.

A draw is a spend: it passes the same risk check as a redemption. It is recorded (prize taken
from stock) before the ledger is called, then settled: cost debited, points prize credited. A
refusal that can never succeed settles the draw as FAILED: its prize goes back to stock, a
charged cost is refunded, and a refused prize leaves a dead letter for an operator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Mapping, Sequence

import asyncpg
from asyncpg import Record

from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as pb
from services.common import dead_letters
from services.common.db import Conn
from services.common.errors import DomainError, FailedPrecondition, NotFound
from services.common.idempotency import fingerprint, key_reused
from services.common.ledger_client import LedgerClient
from services.common.peers import PeerError, PeerRefused
from services.common.periodic import traced_work
from services.common.rules_client import RulesClient
from services.common.validation import MAX_MONEY_MINOR, MAX_POINTS, Checker
from services.mall import catalog
from services.mall import coupons_repository as coupon_repo
from services.mall import lottery_repository as repo
from services.mall import repository as mall_repo
from services.mall.config import MallConfig
from services.mall.saga import new_code

log = logging.getLogger(__name__)
PRIZE_LETTER = "LOTTERY_PRIZE"  # the dead letter of a prize the ledger refused
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
Table = Sequence[tuple[str, int, bool]]  # (prize_id, weight, available), in table order
MAX_WEIGHT = 10**9  # per prize: the total stays far inside int64 and the roll stays uniform
MAX_PRIZES = 100
MAX_STOCK = 10**9


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


def prize_table(lottery: pb.Lottery, won_today: Mapping[str, int]) -> Table:
    """The lottery's prizes, each available while it has stock and its daily cap is not
    reached."""
    return [
        (
            p.prize_id,
            p.weight,
            (p.unlimited_stock or p.stock > 0)
            and not (p.daily_cap and won_today.get(p.prize_id, 0) >= p.daily_cap),
        )
        for p in lottery.prizes
    ]


def check_drawable(lottery: pb.Lottery, drawn_today: int) -> None:
    """The lottery is open and the member has a draw left today."""
    if not lottery.enabled:
        raise FailedPrecondition(
            "LOTTERY_NOT_AVAILABLE", "the lottery is closed", {"lottery_id": lottery.lottery_id}
        )
    if lottery.daily_draws_per_user and drawn_today >= lottery.daily_draws_per_user:
        raise FailedPrecondition(
            "USER_LIMIT_REACHED",
            "no draws left today",
            {"daily_draws_per_user": str(lottery.daily_draws_per_user)},
        )


def check_lottery(lottery: pb.Lottery) -> None:
    """Everything a draw would trip over later is refused now, when the operator can fix it:
    weights and amounts the ledger or int64 could not take, unknown kinds, missing prizes."""
    c = Checker("lottery")
    c.require(
        bool(_ID.match(lottery.lottery_id)), "lottery_id", "lower-case letters, digits, '_.-'"
    )
    c.text("title", lottery.title, 200)
    c.require(
        0 < lottery.points_per_draw <= MAX_POINTS,
        "points_per_draw",
        f"must be > 0 and <= {MAX_POINTS}",
    )
    c.require(lottery.daily_draws_per_user >= 0, "daily_draws_per_user", "must be >= 0")
    c.require(
        0 <= lottery.no_prize_weight <= MAX_WEIGHT,
        "no_prize_weight",
        f"must be between 0 and {MAX_WEIGHT}",
    )
    ids = [p.prize_id for p in lottery.prizes]
    c.require(len(set(ids)) == len(ids), "prizes", "prize ids must be unique")
    c.require(len(ids) <= MAX_PRIZES, "prizes", f"at most {MAX_PRIZES} prizes")
    for index, prize in enumerate(lottery.prizes):
        _check_prize(c, f"prizes[{index}]", prize)
    c.require(
        bool(lottery.prizes) or lottery.no_prize_weight > 0, "prizes", "a lottery needs some weight"
    )
    c.done()


def _check_prize(c: Checker, field: str, prize: pb.Prize) -> None:
    c.require(
        bool(_ID.match(prize.prize_id)),
        f"{field}.prize_id",
        "is required: lower-case letters, digits, '_.-'",
    )
    c.require(0 < prize.weight <= MAX_WEIGHT, f"{field}.weight", f"must be > 0 and <= {MAX_WEIGHT}")
    if prize.kind == pb.PRIZE_KIND_POINTS:
        c.require(
            0 < prize.points <= MAX_POINTS,
            f"{field}.points",
            f"a points prize needs points > 0 and <= {MAX_POINTS}",
        )
    elif prize.kind == pb.PRIZE_KIND_COUPON:
        c.require(
            0 < prize.coupon_value.amount_minor <= MAX_MONEY_MINOR
            and 0 <= prize.coupon_min_spend.amount_minor <= MAX_MONEY_MINOR
            and len(prize.coupon_value.currency) == 3,
            f"{field}.coupon_value",
            "a coupon prize needs a value and a currency",
        )
    elif prize.kind == pb.PRIZE_KIND_ITEM:
        c.require(
            bool(_ID.match(prize.item_id)), f"{field}.item_id", "an item prize needs an item id"
        )
    else:
        c.fail(f"{field}.kind", "must be POINTS, COUPON or ITEM")
    c.require(
        0 <= prize.stock <= MAX_STOCK and 0 <= prize.daily_cap <= MAX_STOCK,
        f"{field}.stock",
        f"stock and daily_cap must be between 0 and {MAX_STOCK}",
    )


def _sha256(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def _not_found(lottery_id: str) -> NotFound:
    return NotFound("LOTTERY_NOT_FOUND", f"no lottery {lottery_id}", {"lottery_id": lottery_id})


class Lotteries:
    def __init__(
        self, pool: asyncpg.Pool, config: MallConfig, ledger: LedgerClient, rules: RulesClient
    ) -> None:
        self.pool = pool
        self.config = config
        self.ledger = ledger
        self.rules = rules

    async def upsert(self, lottery: pb.Lottery) -> str:
        check_lottery(lottery)
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.save_lottery(conn, lottery)
            return str((await self._current_seed(conn, lottery.lottery_id))["seed_sha256"])

    async def _current_seed(self, conn: Conn, lottery_id: str) -> Record:
        row = await repo.current_seed(conn, lottery_id)
        if row is not None:
            return row
        seed = secrets.token_bytes(32)
        return await repo.add_seed(conn, lottery_id, seed, _sha256(seed))

    async def _lottery(self, conn: Conn, lottery_id: str) -> pb.Lottery:
        lottery = await repo.get_lottery(conn, lottery_id)
        if lottery is None:
            raise _not_found(lottery_id)
        return lottery

    async def page(self, after: str, fetch: int) -> list[pb.Lottery]:
        async with self.pool.acquire() as conn:
            return await repo.list_lotteries(conn, after, fetch)

    async def get(self, lottery_id: str) -> pb.GetLotteryResponse:
        async with self.pool.acquire() as conn, conn.transaction():
            lottery = await self._lottery(conn, lottery_id)
            current = await self._current_seed(conn, lottery_id)
            revealed = await repo.revealed_seeds(conn, lottery_id)
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
            await repo.lock_lottery(conn, lottery_id)
            current = await self._current_seed(conn, lottery_id)
            await repo.reveal_seed(conn, lottery_id, current["seed_id"])
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
        print_ = fingerprint("Draw", request)
        async with self.pool.acquire() as conn:
            done = await repo.draw_by_request(conn, request.user_id, request.request_id)
        if done is None:
            await self.rules.require_allowed(request.user_id, "draw", request.device_id, request.ip)
            row, fresh = await self._draw(request, print_)
            if fresh:
                return await self._settle(row)
            done = row  # a concurrent duplicate drew first
        stored = done["payload_sha256"]  # NULL on draws made before fingerprints
        if stored is not None and bytes(stored) != print_:
            raise key_reused(request.request_id)
        if done["lottery_id"] != request.lottery_id:
            raise key_reused(request.request_id)
        return await self._result_or_error(done)

    async def _settle(self, row: Record) -> pb.DrawResult:
        """Charge the draw and pay its prize (idempotent ledger calls), then complete it.
        A draw left here by a crash or an outage is settled by `recover_once`."""
        try:
            charged = await self.ledger.debit(
                lpb.DebitRequest(
                    request_id=f"lottery:{row['draw_id']}:cost",
                    user_id=row["user_id"],
                    amount=row["cost"],
                    reason_code="LOTTERY_DRAW",
                    metadata={"lottery_id": row["lottery_id"]},
                )
            )
        except PeerRefused as exc:
            await self._void(row, exc.reason)
            raise _draw_failed(row, exc.reason) from None
        if row["points_won"]:
            try:
                await self.ledger.credit(
                    lpb.CreditRequest(
                        request_id=f"lottery:{row['draw_id']}:prize",
                        user_id=row["user_id"],
                        amount=row["points_won"],
                        source=f"lottery:{row['lottery_id']}",
                        reason_code="LOTTERY_PRIZE",
                    )
                )
            except PeerRefused as exc:
                await self._refund(row, charged.transfer.transfer_id, exc)
                raise _draw_failed(row, "PRIZE_NOT_PAYABLE") from None
        async with self.pool.acquire() as conn:
            completed = await repo.complete_draw(conn, row["user_id"], row["draw_id"])
        return await self.result(completed)

    async def _refund(self, row: Record, cost_transfer_id: str, refusal: PeerRefused) -> None:
        """The prize can never be paid: give the cost back, fail the draw, tell operators."""
        await self.ledger.reverse(
            lpb.ReverseRequest(
                request_id=f"lottery:{row['draw_id']}:refund",
                user_id=row["user_id"],
                transfer_id=cost_transfer_id,
                reason_code="LOTTERY_PRIZE_REFUSED",
            )
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.void_draw(conn, row, "PRIZE_NOT_PAYABLE")
            await dead_letters.record(
                conn, row["user_id"], PRIZE_LETTER, f"draw:{row['draw_id']}", refusal
            )
        log.error(
            "a lottery prize was refused; the draw was refunded",
            extra={"draw_id": row["draw_id"], "reason": refusal.reason},
        )

    async def recover_once(self) -> int:
        """Settle draws a crash or an outage left between drawing and charging."""
        async with self.pool.acquire() as conn:
            stuck = await repo.stuck_draws(conn, self.config.recovery_after_seconds, 100)
        if stuck:
            with traced_work("mall.recover_draws", attributes={"points.draws": len(stuck)}):
                await self._recover(stuck)
        return len(stuck)

    async def _recover(self, stuck: list[Record]) -> None:
        for row in stuck:
            cost = pb.Lottery.FromString(row["lottery"]).points_per_draw
            try:
                await self._settle({**dict(row), "cost": cost})  # type: ignore[arg-type]
            except DomainError:
                pass  # settled as FAILED, which is a final state
            except (PeerError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning(
                    "draw not settled yet", extra={"draw_id": row["draw_id"], "error": str(exc)}
                )

    async def _draw(self, request: pb.DrawRequest, print_: bytes) -> tuple[Record, bool]:
        """Pick the outcome and take the prize from stock, in one transaction: the new draw
        and True, or the draw a concurrent duplicate of this request made first and False."""
        async with self.pool.acquire() as conn, conn.transaction():
            now = await mall_repo.lock_user(conn, request.user_id)
            earlier = await repo.draw_by_request(conn, request.user_id, request.request_id)
            if earlier is not None:
                return earlier, False
            lottery = await self._lottery(conn, request.lottery_id)
            day = now.astimezone(self.config.zone).date()
            drawn = await repo.draws_today(conn, request.user_id, request.lottery_id, day)
            check_drawable(lottery, drawn)
            nonce = await repo.next_nonce(conn, request.user_id, request.lottery_id)
            seed = await self._current_seed(conn, request.lottery_id)
            table = prize_table(lottery, await repo.won_today(conn, request.lottery_id, day))
            value = roll(bytes(seed["seed"]), request.user_id, nonce)
            pick, prize_id = choose(value, table, lottery.no_prize_weight)
            if prize_id and not await repo.take_prize(conn, request.lottery_id, prize_id, day):
                # Another draw took the last unit a moment ago: it is unavailable after all.
                table = [(i, w, a and i != prize_id) for i, w, a in table]
                pick, prize_id = choose(value, table, lottery.no_prize_weight)
            prize = next((p for p in lottery.prizes if p.prize_id == prize_id), None)
            code = new_code() if prize is not None and prize.kind == pb.PRIZE_KIND_COUPON else None
            row = await repo.insert_draw(
                conn,
                {
                    "user_id": request.user_id,
                    "request_id": request.request_id,
                    "payload_sha256": print_,
                    "lottery_id": request.lottery_id,
                    "nonce": nonce,
                    "seed_id": seed["seed_id"],
                    "roll": value,
                    "pick": pick,
                    "prize_table": table,
                    "no_prize_weight": lottery.no_prize_weight,
                    "prize_id": prize_id,
                    "points_won": (
                        prize.points
                        if prize is not None and prize.kind == pb.PRIZE_KIND_POINTS
                        else 0
                    ),
                    "coupon_code": code,
                    "day": day,
                },
                lottery.points_per_draw,
            )
            if code is not None and prize is not None:
                await coupon_repo.issue_prize(conn, request.user_id, code, prize)
            if prize is not None and prize.kind == pb.PRIZE_KIND_ITEM:
                row = await self._item_prize(conn, row, prize.item_id, request.shipping_address)
        return row, True

    async def _item_prize(
        self, conn: Conn, draw: Record, item_id: str, shipping_address: str
    ) -> Record:
        """Fulfil an item prize like a redemption (no points: the draw paid for it)."""
        item_row = await mall_repo.get_item(conn, item_id)
        item_type = item_row["item_type"] if item_row is not None else "ITEM_TYPE_VIRTUAL"
        shipped = item_type in catalog.SHIPPED
        return await repo.insert_prize_redemption(
            conn,
            draw,
            item_id,
            item_type,
            None if shipped else new_code(),
            shipped,
            shipping_address,
        )

    async def _void(self, row: Record, reason: str) -> None:
        """Undo a draw that could not be paid for: its prize goes back, nothing was won."""
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.void_draw(conn, row, reason)

    async def _result_or_error(self, row: Record) -> pb.DrawResult:
        if row["state"] == "FAILED":
            raise _draw_failed(row, row["failure_reason"] or "INSUFFICIENT_POINTS")
        if row["state"] == "DRAWN":
            return await self._settle({**dict(row), "cost": await self._cost(row)})  # type: ignore[arg-type]
        return await self.result(row)

    async def _cost(self, row: Record) -> int:
        async with self.pool.acquire() as conn:
            lottery = await self._lottery(conn, row["lottery_id"])
        return lottery.points_per_draw

    async def result(self, row: Record) -> pb.DrawResult:
        async with self.pool.acquire() as conn:
            seed = await repo.seed(conn, row["lottery_id"], row["seed_id"])
        assert seed is not None
        return pb.DrawResult(
            draw_id=str(row["draw_id"]),
            lottery_id=row["lottery_id"],
            user_id=row["user_id"],
            nonce=row["nonce"],
            seed_id=row["seed_id"],
            seed_sha256=seed["seed_sha256"],
            prize_id=row["prize_id"],
            points_won=row["points_won"],
            coupon_code=row["coupon_code"] or "",
            roll=int(row["roll"]),
            pick=row["pick"],
            redemption_id=str(row["redemption_id"] or ""),
        )

    async def verify(self, user_id: str, draw_id: int) -> pb.VerifyDrawResponse:
        async with self.pool.acquire() as conn:
            row = await repo.get_draw(conn, user_id, draw_id)
            if row is None:
                raise NotFound("DRAW_NOT_FOUND", f"no draw {draw_id}", {"draw_id": str(draw_id)})
            seed = await repo.seed(conn, row["lottery_id"], row["seed_id"])
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


def _draw_failed(row: Record, reason: str) -> FailedPrecondition:
    messages = {
        "INSUFFICIENT_POINTS": "not enough points to draw",
        "PRIZE_NOT_PAYABLE": "the prize could not be paid; the draw's cost was refunded",
    }
    return FailedPrecondition(
        reason,
        messages.get(reason, f"the draw failed: {reason}"),
        {"draw_id": str(row["draw_id"]), "lottery_id": row["lottery_id"]},
    )
