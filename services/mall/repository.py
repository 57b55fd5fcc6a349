"""SQL of the mall. Functions run inside the caller's transaction unless they say otherwise."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asyncpg import Record

from loyalty.mall.v1 import mall_pb2 as pb
from services.common.db import Conn
from services.common.telemetry import current_traceparent
from services.common.timestamps import from_timestamp

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


async def save_item(conn: Conn, item: pb.Item) -> None:
    await conn.execute(
        """
        INSERT INTO items (item_id, item_type, points_price, stock, enabled, available_from,
                           available_until, definition)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (item_id) DO UPDATE SET item_type = EXCLUDED.item_type,
            points_price = EXCLUDED.points_price, stock = EXCLUDED.stock,
            enabled = EXCLUDED.enabled, available_from = EXCLUDED.available_from,
            available_until = EXCLUDED.available_until, definition = EXCLUDED.definition,
            updated_at = now()
        """,
        item.item_id,
        pb.ItemType.Name(item.type),
        item.points_price,
        None if item.unlimited_stock else item.stock,
        item.enabled,
        from_timestamp(item.available_from) if item.HasField("available_from") else None,
        from_timestamp(item.available_until) if item.HasField("available_until") else None,
        item.SerializeToString(),
    )


def item_of(row: Record) -> pb.Item:
    item = pb.Item.FromString(row["definition"])
    if row["stock"] is not None:
        item.stock = row["stock"]  # the live count
    return item


async def get_item(conn: Conn, item_id: str) -> Record | None:
    return await conn.fetchrow(
        """
        SELECT *, enabled AND (available_from IS NULL OR available_from <= now())
                  AND (available_until IS NULL OR available_until > now()) AS available
        FROM items WHERE item_id = $1
        """,
        item_id,
    )


async def list_items(
    conn: Conn, item_type: str | None, max_price: int, after: str, fetch: int, every: bool = False
) -> list[Record]:
    """Up to `fetch` enabled items on sale now (`every`: all items), by id after `after`."""
    return list(
        await conn.fetch(
            """
        SELECT * FROM items
        WHERE item_id > $3
          AND ($5 OR enabled AND (available_from IS NULL OR available_from <= now())
                             AND (available_until IS NULL OR available_until > now()))
          AND ($1::text IS NULL OR item_type = $1) AND ($2 = 0 OR points_price <= $2)
        ORDER BY item_id LIMIT $4
        """,
            item_type,
            max_price,
            after,
            fetch,
            every,
        )
    )


async def lock_user(conn: Conn, user_id: str) -> datetime:
    now: datetime = await conn.fetchval(
        """
        WITH locked AS (
            INSERT INTO users AS u (user_id) VALUES ($1)
            ON CONFLICT (user_id) DO UPDATE SET created_at = u.created_at RETURNING 1
        )
        SELECT now() FROM locked
        """,
        user_id,
    )
    return now


async def create_redemption(conn: Conn, values: dict[str, Any]) -> Record | None:
    """Insert a new redemption; None when (user_id, request_id) already exists."""
    return await conn.fetchrow(
        """
        INSERT INTO redemptions (user_id, request_id, payload_sha256, item_id, item_type,
                                 quantity, points, shipping_address, device_id, ip,
                                 cash_minor, cash_currency, traceparent)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (user_id, request_id) DO NOTHING
        RETURNING *, now() AS read_at
        """,
        values["user_id"],
        values["request_id"],
        values["payload_sha256"],
        values["item_id"],
        values["item_type"],
        values["quantity"],
        values["points"],
        values["shipping_address"],
        values["device_id"],
        values["ip"],
        values["cash_minor"],
        values["cash_currency"],
        current_traceparent(),
    )


# Redemption rows come with `read_at`, the database's time when they were read: the saga
# judges deadlines and code expiries by it without asking the database for the time again.


async def get_redemption(conn: Conn, user_id: str, redemption_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT *, now() AS read_at FROM redemptions WHERE user_id = $1 AND redemption_id = $2",
        user_id,
        redemption_id,
    )


async def redemption_by_request(conn: Conn, user_id: str, request_id: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT *, now() AS read_at FROM redemptions WHERE user_id = $1 AND request_id = $2",
        user_id,
        request_id,
    )


async def list_redemptions(
    conn: Conn, user_id: str | None, before: int | None, fetch: int, steps: list[str] | None
) -> list[Record]:
    """Up to `fetch` of a member's redemptions (every member's when `user_id` is None), newest
    first, in one of `steps` when given. Two statements, so that each keeps its own index."""
    where = "($1::bigint IS NULL OR redemption_id < $1) AND ($3::text[] IS NULL OR step = ANY($3))"
    if user_id is None:
        query = f"SELECT * FROM redemptions WHERE {where} ORDER BY redemption_id DESC LIMIT $2"
        return list(await conn.fetch(query, before, fetch, steps))
    query = (
        f"SELECT * FROM redemptions WHERE user_id = $4 AND {where} "
        "ORDER BY redemption_id DESC LIMIT $2"
    )
    return list(await conn.fetch(query, before, fetch, steps, user_id))


async def redeemed_in_period(
    conn: Conn, user_id: str, item_id: str, since: datetime | None, excluding: int
) -> int:
    """Units of the item the user's redemptions hold (reserved stock, through completion);
    sagas not yet past their own reservation do not count."""
    total: int = await conn.fetchval(
        """
        SELECT coalesce(sum(quantity), 0)::bigint FROM redemptions
        WHERE user_id = $1 AND item_id = $2 AND redemption_id <> $4 AND stock_reserved
          AND ($3::timestamptz IS NULL OR created_at >= $3)
        """,
        user_id,
        item_id,
        since,
        excluding,
    )
    return total


async def reserve(conn: Conn, row: Record) -> Record | None:
    """Move a STARTED redemption to STOCK_RESERVED and take its units of stock (never below
    zero), in one statement. None when another driver moved it first; a row whose `taken` is
    false when the stock fell short (the caller rolls back the move)."""
    return await conn.fetchrow(
        """
        WITH moved AS (
            UPDATE redemptions SET step = 'STOCK_RESERVED', stock_reserved = true,
                                   updated_at = now()
            WHERE user_id = $1 AND redemption_id = $2 AND step = 'STARTED'
            RETURNING *
        ), taken AS (
            UPDATE items i SET stock = i.stock - m.quantity
            FROM moved m
            WHERE i.item_id = m.item_id AND (i.stock IS NULL OR i.stock >= m.quantity)
            RETURNING true
        )
        SELECT *, now() AS read_at, EXISTS (SELECT FROM taken) AS taken FROM moved
        """,
        row["user_id"],
        row["redemption_id"],
    )


async def restore_stock(conn: Conn, item_id: str, quantity: int) -> None:
    await conn.execute(
        "UPDATE items SET stock = stock + $2 WHERE item_id = $1 AND stock IS NOT NULL",
        item_id,
        quantity,
    )


async def advance(
    conn: Conn, row: Record, from_steps: tuple[str, ...], **changes: Any
) -> Record | None:
    """Move a redemption on, only from one of `from_steps` (so two drivers cannot both do
    it); returns the new row, or None when someone else moved it first. The move's event (a
    redemption ended, a shipment moved) is written to the outbox in the same statement."""
    columns = sorted(changes)
    assignments = ", ".join(f"{c} = ${i + 5}" for i, c in enumerate(columns))
    return await conn.fetchrow(
        f"""
        WITH moved AS (
            UPDATE redemptions SET {assignments}, updated_at = now()
            WHERE user_id = $1 AND redemption_id = $2 AND step = ANY($3::text[])
            RETURNING *
        ), announced AS (
            INSERT INTO outbox (type, member_id, data)
            SELECT $4::text, user_id, jsonb_strip_nulls(jsonb_build_object(
                'redemption_id', redemption_id::text, 'item_id', item_id,
                'quantity', quantity, 'points', points,
                'failure_reason', nullif(failure_reason, ''), 'shipment_status', shipment_status))
            FROM moved WHERE $4::text IS NOT NULL
        )
        SELECT *, now() AS read_at FROM moved
        """,
        row["user_id"],
        row["redemption_id"],
        list(from_steps),
        _event_of(changes),
        *(changes[c] for c in columns),
    )


def _event_of(changes: dict[str, Any]) -> str | None:
    """The event a move announces: the end of a redemption, or a shipment's progress."""
    step = changes.get("step")
    if step in TERMINAL:
        return f"redemption.{str(step).lower()}"
    if step is None and "shipment_status" in changes:
        return "shipment.updated"
    return None


async def unfinished(conn: Conn, older_than_seconds: float, limit: int) -> list[Record]:
    return list(
        await conn.fetch(
            """
        SELECT user_id, redemption_id, traceparent FROM redemptions
        WHERE step NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')
          AND updated_at <= now() - make_interval(secs => $1)
        ORDER BY updated_at LIMIT $2
        """,
            older_than_seconds,
            limit,
        )
    )


async def gauges(conn: Conn) -> list[Record]:
    """Unfinished sagas per step, with the age of the oldest (see `measures.py`)."""
    return list(
        await conn.fetch(
            """
        SELECT step, count(*) AS n,
               extract(epoch FROM now() - min(updated_at))::float8 AS oldest
        FROM redemptions WHERE step NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')
        GROUP BY step
        """
        )
    )
