"""The events a service wrote to its outbox for a member, each checked against the committed
JSON Schemas (events/schemas) as a webhook consumer would check it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema

from services.common import outbox

SCHEMAS = Path(__file__).resolve().parents[2] / "events" / "schemas"


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def check(event: dict[str, Any]) -> dict[str, Any]:
    """Raise unless the envelope and its data match their schemas; return the event."""
    validator("envelope").validate(event)
    validator(event["type"]).validate(event["data"])
    return event


async def events_of(database_url: str, schema: str, member: str) -> list[dict[str, Any]]:
    """The member's events in `schema`'s outbox, in the order they committed (a member's
    events are written in commit order)."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch(
            "SELECT * FROM outbox WHERE member_id = $1 ORDER BY member_seq, seq", member
        )
    finally:
        await conn.close()
    return [check(outbox.envelope(row, schema)) for row in rows]


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def program_events(database_url: str, schema: str, kind: str) -> list[dict[str, Any]]:
    """Program-wide events (no member) of one type in `schema`'s outbox, in order."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch(
            "SELECT * FROM outbox WHERE member_id = '' AND type = $1 ORDER BY seq", kind
        )
    finally:
        await conn.close()
    return [check(outbox.envelope(row, schema)) for row in rows]
