"""`points`, the operator's command line, against a real database and a real ledger: it is run
as installed (the console script), as an operator would."""

from __future__ import annotations

import csv
import io
import json

import grpc
import jwt

from loyalty.ledger.v1 import ledger_pb2_grpc
from services.ledger.server import SPEC as LEDGER
from tests.support.cli import points
from tests.support.hosts import running
from tests.support.ledger_calls import Stub, credit


async def test_migrations_as_a_deploy_step(private_database: str) -> None:
    code, out, _ = await points("migrate", "status", DATABASE_URL=private_database)
    assert code == 0 and "pending" in out and "0001_ledger" in out
    pending = int(out.strip().splitlines()[-1].split()[0])
    code, out, _ = await points("migrate", "up", DATABASE_URL=private_database)
    assert code == 0
    applied = sum(len(line.split()[1:]) for line in out.splitlines() if "nothing" not in line)
    assert applied == pending
    code, out, _ = await points("migrate", "status", DATABASE_URL=private_database)
    assert out.strip().endswith("up to date") and "pending" not in out
    code, out, _ = await points("migrate", "up", DATABASE_URL=private_database)
    assert out.count("nothing to apply") == 4
    code, _, err = await points("migrate", "status", DATABASE_URL="")
    assert code == 2 and "DATABASE_URL" in err


async def test_ledger_commands_and_a_streamed_export(private_database: str) -> None:
    async with (
        running(LEDGER, private_database) as ledger_host,
        grpc.aio.insecure_channel(f"127.0.0.1:{ledger_host.port}") as channel,
    ):
        ledger: Stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        for amount in (100, 250):
            await credit(ledger, "cli-member", amount)
        env = {"LEDGER_ADDR": f"127.0.0.1:{ledger_host.port}", "DATABASE_URL": private_database}
        code, out, _ = await points("stats", **env)
        assert code == 0 and json.loads(out)["issued"] == "350"  # protobuf JSON: int64 as text
        code, out, _ = await points("audit", **env)
        assert code == 0 and json.loads(out)["ok"] is True
        code, out, _ = await points("expire", "--request-id", "cli-run", **env)
        assert code == 0 and json.loads(out).get("lots_expired", "0") == "0"
        code, out, err = await points("export", "transfers", **env)
        rows = list(csv.DictReader(io.StringIO(out)))
        assert all(r["created_at"].endswith("+00") for r in rows)  # UTC, whatever the server
        assert [(r["user_id"], r["kind"], r["amount"]) for r in rows] == [
            ("cli-member", "EARN", "100"),
            ("cli-member", "EARN", "250"),
        ]
        assert err.strip() == "2 transfers rows"
        code, out, _ = await points("export", "lots", "--format", "jsonl", **env)
        lots = [json.loads(line) for line in out.splitlines()]
        assert sorted(lot["remaining"] for lot in lots) == [100, 250]
        code, out, _ = await points(
            "export", "members", "--from", "2000-01-01", "--to", "2000-01-02", **env
        )
        # Nobody joined then: the header alone, so a spreadsheet still knows the columns.
        assert out.splitlines() == [
            "user_id,balance,held,earned,spent,expired,reversed,created_at,updated_at"
        ]
    code, _, err = await points("stats", LEDGER_ADDR="127.0.0.1:1")
    assert code == 1 and "UNAVAILABLE" in err


async def test_a_development_token() -> None:
    code, out, _ = await points("token", "ops", "--scope", "admin", POINTS_ENV="development")
    claims = jwt.decode(out.strip(), options={"verify_signature": False})
    assert code == 0 and (claims["sub"], claims["scope"]) == ("ops", "admin")
