"""The operators' audit log: every admin change, appended once (by its entry id), each
entry's hash covering the one before, and sent to subscribers as `audit.recorded`.

The hash of an entry is SHA-256 (hex) of the previous entry's hash followed by the entry's
canonical JSON (`canonical`): its fields but the hashes, keys sorted, no spaces, the time in
RFC 3339 with microseconds. The first entry's previous hash is 64 zeros. `Verifier` walks the
log in order and names the first entry that does not follow, so an entry changed, removed or
inserted afterwards shows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from asyncpg import Record

from loyalty.webhooks.v1 import webhooks_pb2 as pb
from services.common.outbox import Origin, envelope_of
from services.common.paging import Pager, token_number
from services.common.timestamps import from_timestamp, rfc3339, to_timestamp
from services.common.validation import Checker
from services.webhooks import audit_repository as repo
from services.webhooks import repository as events_repo

GENESIS = "0" * 64
MAX_BODY = 16 * 1024  # characters of a request or answer body kept
ROLES = frozenset({"viewer", "operator", "finance", "admin"})
HASHED = ("seq", "entry_id", "actor", "roles", "action", "target", "request_json",
          "response_json", "status", "ip", "user_agent", "recorded_at")  # fmt: skip


def canonical(entry: Mapping[str, Any]) -> str:
    fields = {name: entry[name] for name in HASHED}
    fields["roles"] = list(fields["roles"])
    fields["recorded_at"] = moment(entry["recorded_at"])
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def moment(value: datetime) -> str:
    """A time as the hash sees it: UTC, microseconds always written."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(entry)).encode()).hexdigest()


class Verifier:
    """Feed the log's entries in order; `problems` names each that breaks the chain."""

    def __init__(self) -> None:
        self.seq, self.hash = 0, GENESIS
        self.problems: list[str] = []

    def feed(self, entry: Mapping[str, Any]) -> None:
        seq = entry["seq"]
        if seq != self.seq + 1:
            self.problems.append(f"entry {seq}: follows entry {self.seq} (one is missing)")
        elif entry["prev_hash"] != self.hash:
            self.problems.append(f"entry {seq}: its previous hash is not entry {self.seq}'s")
        elif chain_hash(entry["prev_hash"], entry) != entry["hash"]:
            self.problems.append(f"entry {seq}: its content does not match its hash")
        self.seq, self.hash = seq, entry["hash"]


def check(entry: pb.AuditEntry) -> None:
    c = Checker("entry")
    c.identifier("entry_id", entry.entry_id, 200)
    c.text("actor", entry.actor, 128)
    c.require(set(entry.roles) <= ROLES, "roles", "viewer, operator, finance or admin")
    c.text("action", entry.action, 300)
    c.text("target", entry.target, 1000)
    c.text("request_json", entry.request_json, MAX_BODY, required=False)
    c.text("response_json", entry.response_json, MAX_BODY, required=False)
    c.require(100 <= entry.status <= 599, "status", "an HTTP status")
    c.text("ip", entry.ip, 64, required=False)
    c.text("user_agent", entry.user_agent, 500, required=False)
    c.done()


def entry_of(row: Record) -> pb.AuditEntry:
    fields = {name: row[name] for name in HASHED if name != "recorded_at"}
    return pb.AuditEntry(
        **fields,
        create_time=to_timestamp(row["recorded_at"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _event(row: Record) -> tuple[object, ...]:
    """The audit.recorded event of an entry, as repository.publish stores it."""
    data = {name: row[name] for name in HASHED if not name.endswith("_json")}
    data |= {
        "roles": list(row["roles"]),
        "recorded_at": rfc3339(row["recorded_at"]),
        "request": _json_or_none(row["request_json"]),
        "response": _json_or_none(row["response_json"]),
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }
    event_id = str(uuid.uuid4())
    origin = Origin("webhooks", row["seq"])
    body = envelope_of(event_id, "audit.recorded", row["recorded_at"], None, data, origin)
    body_json = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return (event_id, "audit.recorded", "", row["recorded_at"], "webhooks", row["seq"], body_json)


class AuditLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, entry: pb.AuditEntry) -> Record:
        """The entry as appended, or as appended before under the same entry id."""
        check(entry)
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.lock(conn)
            found = await repo.find(conn, entry.entry_id)
            if found is not None:
                return found
            last = await repo.last(conn)
            assert last is not None
            row: dict[str, object] = {name: getattr(entry, name) for name in HASHED[1:-1]}
            row |= {"seq": (last["seq"] or 0) + 1, "roles": list(entry.roles)}
            row |= {"recorded_at": last["now"], "prev_hash": last["hash"] or GENESIS}
            row["hash"] = chain_hash(str(row["prev_hash"]), row)
            stored = await repo.append(conn, row)
            await events_repo.publish(conn, [_event(stored)])
        return stored

    async def page(self, request: pb.ListAuditRequest, pager: Pager) -> list[Record]:
        span = request.time_range
        start = from_timestamp(span.start_time) if span.HasField("start_time") else None
        end = from_timestamp(span.end_time) if span.HasField("end_time") else None
        before = token_number(pager.after[0]) if pager.after else None
        async with self.pool.acquire() as conn:
            return await repo.page(
                conn, request.actor, request.text, (start, end), before, pager.fetch
            )
