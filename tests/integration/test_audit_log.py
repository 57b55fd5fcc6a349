"""The operators' audit log in the webhooks service: appended once per entry id, hash-chained,
append-only in the database, sent to subscribers as audit.recorded, and exported and verified
by `points audit-log`, which reports an entry changed behind its back."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import asyncpg
import grpc
import pytest

from loyalty.webhooks.v1 import webhooks_pb2 as pb
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from services.webhooks.server import SPEC as WEBHOOKS
from tests.support.cli import points
from tests.support.events import check
from tests.support.hosts import running
from tests.support.receiver import receiving

ENV = {"WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.1/32", "WEBHOOKS_POLL_SECONDS": "0.1"}


def entry(entry_id: str, actor: str = "ops-ana") -> pb.AuditEntry:
    return pb.AuditEntry(
        entry_id=entry_id,
        actor=actor,
        roles=["operator"],
        action="PUT /v1/admin/rules/{rule_id}",
        target="/v1/admin/rules/like",
        request_json='{"kind":"ACTION"}',
        response_json='{"rule_id":"like","version":2}',
        status=200,
        ip="10.0.0.7",
        user_agent="console",
    )


async def test_entries_chain_replay_and_reach_subscribers(private_database: str) -> None:
    async with (
        receiving() as receiver,
        running(WEBHOOKS, private_database, ENV) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        stub = webhooks_pb2_grpc.WebhooksServiceStub(channel)
        hook = pb.Subscription(url=receiver.url, event_types=["audit.recorded"])
        await stub.CreateSubscription(pb.CreateSubscriptionRequest(subscription=hook))
        first = (await stub.RecordAudit(pb.RecordAuditRequest(entry=entry("k-1")))).entry
        again = (await stub.RecordAudit(pb.RecordAuditRequest(entry=entry("k-1")))).entry
        second = (await stub.RecordAudit(pb.RecordAuditRequest(entry=entry("k-2", "ops-bo")))).entry
        assert (first.seq, again.seq, second.seq) == (1, 1, 2)
        assert (first.prev_hash, second.prev_hash) == ("0" * 64, first.hash)
        assert again.hash == first.hash

        listed = await stub.ListAudit(pb.ListAuditRequest(actor="ops-bo"))
        assert [e.entry_id for e in listed.entries] == ["k-2"]
        found = await stub.ListAudit(pb.ListAuditRequest(text="rules/like", page_size=1))
        assert [e.seq for e in found.entries] == [2] and found.next_page_token
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RecordAudit(pb.RecordAuditRequest(entry=entry("k-3", actor="")))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        for _ in range(100):  # both entries, once each, to the subscriber
            if len(receiver.requests) >= 2:
                break
            await asyncio.sleep(0.05)
        events = [check(json.loads(r.body)) for r in receiver.requests]
        assert [(e["type"], e["source"], e["data"]["seq"]) for e in events] == [
            ("audit.recorded", "webhooks", 1),
            ("audit.recorded", "webhooks", 2),
        ]
        assert events[0]["data"]["request"] == {"kind": "ACTION"}


async def test_the_cli_exports_verifies_and_reports_tampering(private_database: str) -> None:
    async with (
        running(WEBHOOKS, private_database, ENV) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        stub = webhooks_pb2_grpc.WebhooksServiceStub(channel)
        for n in range(3):
            await stub.RecordAudit(pb.RecordAuditRequest(entry=entry(f"k-{n}")))
    env = {"DATABASE_URL": private_database}
    code, _, err = await points("audit-log", "verify", **env)
    assert (code, err.strip()) == (0, "3 entries, chain intact")
    code, out, _ = await points("audit-log", "export", "--format", "jsonl", **env)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3] and lines[1]["prev_hash"] == lines[0]["hash"]
    code, out, _ = await points("audit-log", "export", **env)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 3
    assert (rows[0]["seq"], rows[0]["actor"], rows[0]["roles"]) == ("1", "ops-ana", "operator")

    conn = await asyncpg.connect(private_database, server_settings={"search_path": "webhooks"})
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        # Only a superuser who switches the triggers off can change an entry...
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        await conn.execute("DELETE FROM audit_log WHERE seq = 3")
    finally:
        await conn.close()
    # ... and the chain shows it.
    code, _, err = await points("audit-log", "verify", **env)
    assert code == 1
    assert "entry 2: its content does not match its hash" in err
    assert err.strip().endswith("2 entries, chain broken")
