"""Schemathesis against the gateway's own OpenAPI document: whatever a client sends, the
gateway never answers 5xx and every response matches the documented schema.

It runs on services and a database of its own: fuzzing the admin routes rewrites tiers, rules
and blacklists (the documented examples included), which other tests must not meet."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc

from loyalty.rules.v1 import rules_pb2_grpc
from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from services.webhooks.server import SPEC as WEBHOOKS
from tests.support.gateway_calls import bearer, gateway_env
from tests.support.hosts import running, serving_gateway
from tests.support.rules_calls import define_program


async def test_no_input_makes_the_gateway_fail(private_database: str, tmp_path: Path) -> None:
    token = bearer("schemathesis-user", "admin", "events:write")["Authorization"]
    async with (
        running(LEDGER, private_database) as ledger,
        running(RULES, private_database, {"LEDGER_ADDR": f"127.0.0.1:{ledger.port}"}) as rules,
        running(
            MALL,
            private_database,
            {"LEDGER_ADDR": f"127.0.0.1:{ledger.port}", "RULES_ADDR": f"127.0.0.1:{rules.port}"},
        ) as mall,
        running(WEBHOOKS, private_database) as webhooks,
        grpc.aio.insecure_channel(f"127.0.0.1:{rules.port}") as channel,
        serving_gateway(gateway_env(ledger.port, rules.port, mall.port, webhooks.port)) as url,
    ):
        await define_program(rules_pb2_grpc.RulesServiceStub(channel))
        # The CLI runs in its own process while this loop keeps serving every backend.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,"
            "negative_data_rejection,status_code_conformance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            # An endless stream by design.
            "--exclude-path",
            "/v1/me/wallet/stream",
            "-H",
            f"Authorization: {token}",
            "--report-dir",
            str(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
    report = output.decode()
    assert process.returncode == 0, report[-6000:]
