"""SQL of lotteries, their seeds, prize stock and draws (see `lottery.py` for the rules)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from asyncpg import Record

from loyalty.mall.v1 import mall_pb2 as pb
from services.common.db import Conn, lock_for_transaction


async def save_lottery(conn: Conn, lottery: pb.Lottery) -> None:
    """Store the definition and reset the prize stock to what it says."""
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
    await conn.execute("DELETE FROM lottery_prizes WHERE lottery_id = $1", lottery.lottery_id)
    await conn.executemany(
        "INSERT INTO lottery_prizes (lottery_id, prize_id, stock) VALUES ($1, $2, $3)",
        [
            (lottery.lottery_id, p.prize_id, None if p.unlimited_stock else p.stock)
            for p in lottery.prizes
        ],
    )


async def get_lottery(conn: Conn, lottery_id: str) -> pb.Lottery | None:
    """The lottery as defined, with each prize's live stock."""
    row = await conn.fetchrow("SELECT definition FROM lotteries WHERE lottery_id = $1", lottery_id)
    if row is None:
        return None
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


async def list_lotteries(conn: Conn, after: str, fetch: int) -> list[pb.Lottery]:
    """Up to `fetch` lotteries as defined, by id after `after`."""
    rows = await conn.fetch(
        "SELECT definition FROM lotteries WHERE lottery_id > $1 ORDER BY lottery_id LIMIT $2",
        after,
        fetch,
    )
    return [pb.Lottery.FromString(r["definition"]) for r in rows]


async def lock_lottery(conn: Conn, lottery_id: str) -> None:
    """Serialise seed rotation of one lottery (transaction-scoped)."""
    await lock_for_transaction(conn, f"points.lottery.{lottery_id}")


async def current_seed(conn: Conn, lottery_id: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM lottery_seeds WHERE lottery_id = $1 AND revealed_at IS NULL "
        "ORDER BY seed_id DESC LIMIT 1",
        lottery_id,
    )


async def add_seed(conn: Conn, lottery_id: str, seed: bytes, seed_sha256: str) -> Record:
    created = await conn.fetchrow(
        """
        INSERT INTO lottery_seeds (lottery_id, seed_id, seed, seed_sha256)
        SELECT $1, coalesce(max(seed_id), 0) + 1, $2, $3 FROM lottery_seeds
        WHERE lottery_id = $1
        RETURNING *
        """,
        lottery_id,
        seed,
        seed_sha256,
    )
    assert created is not None
    return created


async def reveal_seed(conn: Conn, lottery_id: str, seed_id: int) -> None:
    await conn.execute(
        "UPDATE lottery_seeds SET revealed_at = now() WHERE lottery_id = $1 AND seed_id = $2",
        lottery_id,
        seed_id,
    )


async def revealed_seeds(conn: Conn, lottery_id: str) -> list[Record]:
    return await conn.fetch(
        "SELECT * FROM lottery_seeds WHERE lottery_id = $1 AND revealed_at IS NOT NULL "
        "ORDER BY seed_id DESC",
        lottery_id,
    )


async def seed(conn: Conn, lottery_id: str, seed_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM lottery_seeds WHERE lottery_id = $1 AND seed_id = $2", lottery_id, seed_id
    )


async def draw_by_request(conn: Conn, user_id: str, request_id: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM draws WHERE user_id = $1 AND request_id = $2", user_id, request_id
    )


async def get_draw(conn: Conn, user_id: str, draw_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM draws WHERE user_id = $1 AND draw_id = $2", user_id, draw_id
    )


async def draws_today(conn: Conn, user_id: str, lottery_id: str, day: date) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM draws WHERE user_id = $1 AND lottery_id = $2 "
        "AND day = $3 AND state <> 'FAILED'",
        user_id,
        lottery_id,
        day,
    )
    return count


async def next_nonce(conn: Conn, user_id: str, lottery_id: str) -> int:
    nonce: int = await conn.fetchval(
        "SELECT coalesce(max(nonce), 0) + 1 FROM draws WHERE user_id = $1 AND lottery_id = $2",
        user_id,
        lottery_id,
    )
    return nonce


async def won_today(conn: Conn, lottery_id: str, day: date) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT prize_id, won FROM lottery_prize_days WHERE lottery_id = $1 AND day = $2",
        lottery_id,
        day,
    )
    return {r["prize_id"]: r["won"] for r in rows}


async def take_prize(conn: Conn, lottery_id: str, prize_id: str, day: date) -> bool:
    """Take one unit of the prize from stock and count it won today; False when none is left."""
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


async def insert_draw(conn: Conn, values: dict[str, Any], cost: int) -> Record:
    row = await conn.fetchrow(
        """
        INSERT INTO draws (user_id, request_id, payload_sha256, lottery_id, nonce, seed_id, roll,
                           pick, prize_table, no_prize_weight, prize_id, points_won,
                           coupon_code, day)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14)
        RETURNING *, $15::bigint AS cost
        """,
        values["user_id"],
        values["request_id"],
        values["payload_sha256"],
        values["lottery_id"],
        values["nonce"],
        values["seed_id"],
        values["roll"],
        values["pick"],
        json.dumps(values["prize_table"]),
        values["no_prize_weight"],
        values["prize_id"],
        values["points_won"],
        values["coupon_code"],
        values["day"],
        cost,
    )
    assert row is not None
    return row


async def insert_prize_redemption(
    conn: Conn,
    draw: Record,
    item_id: str,
    item_type: str,
    code: str | None,
    shipped: bool,
    shipping_address: str,
) -> Record:
    """An item prize, fulfilled like a redemption with no points (the draw paid for it)."""
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
        code,
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


async def complete_draw(conn: Conn, user_id: str, draw_id: int) -> Record:
    """Mark a draw paid, once (the request and recovery may both get here); its prize is
    announced (lottery.won) in the same statement. Returns the draw as it now stands."""
    row = await conn.fetchrow(
        """
        WITH done AS (
            UPDATE draws SET state = 'COMPLETED'
            WHERE user_id = $1 AND draw_id = $2 AND state = 'DRAWN'
            RETURNING *
        ), announced AS (
            INSERT INTO outbox (type, member_id, data)
            SELECT 'lottery.won', user_id, jsonb_strip_nulls(jsonb_build_object(
                'draw_id', draw_id::text, 'lottery_id', lottery_id, 'prize_id', prize_id,
                'points_won', nullif(points_won, 0), 'coupon_code', coupon_code,
                'redemption_id', redemption_id::text))
            FROM done WHERE prize_id <> ''
        )
        SELECT * FROM done
        UNION ALL
        SELECT * FROM draws
        WHERE user_id = $1 AND draw_id = $2 AND NOT EXISTS (SELECT FROM done)
        """,
        user_id,
        draw_id,
    )
    assert row is not None
    return row


async def void_draw(conn: Conn, draw: Record, reason: str) -> bool:
    """Fail a draw still DRAWN and give its prize back (stock, today's count, its coupon)."""
    voided = await conn.fetchval(
        "UPDATE draws SET state = 'FAILED', failure_reason = $3 "
        "WHERE user_id = $1 AND draw_id = $2 AND state = 'DRAWN' RETURNING true",
        draw["user_id"],
        draw["draw_id"],
        reason,
    )
    if voided and draw["prize_id"]:
        await conn.execute(
            "UPDATE lottery_prizes SET stock = stock + 1 "
            "WHERE lottery_id = $1 AND prize_id = $2 AND stock IS NOT NULL",
            draw["lottery_id"],
            draw["prize_id"],
        )
        await conn.execute(
            "UPDATE lottery_prize_days SET won = won - 1 "
            "WHERE lottery_id = $1 AND prize_id = $2 AND day = $3",
            draw["lottery_id"],
            draw["prize_id"],
            draw["day"],
        )
        await conn.execute(
            "UPDATE coupons SET state = 'REVOKED' WHERE user_id = $1 AND code = $2",
            draw["user_id"],
            draw["coupon_code"],
        )
    return bool(voided)


async def stuck_draws(conn: Conn, older_than_seconds: float, limit: int) -> list[Record]:
    """Draws left between drawing and settling, with their lottery's cost per draw."""
    return await conn.fetch(
        """
        SELECT d.*, l.definition AS lottery FROM draws d JOIN lotteries l USING (lottery_id)
        WHERE d.state = 'DRAWN' AND d.created_at <= now() - make_interval(secs => $1)
        ORDER BY d.created_at LIMIT $2
        """,
        older_than_seconds,
        limit,
    )
