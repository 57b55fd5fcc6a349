"""Schemathesis against the gateway's own OpenAPI document: whatever a client sends, the
gateway never answers 5xx and every response matches the documented schema."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from services.common.server import ServiceHost
from tests.support.gateway_calls import bearer, gateway_env
from tests.support.hosts import serving_gateway
from tests.support.rules_calls import RulesStub, define_program


async def test_no_input_makes_the_gateway_fail(
    ledger_host: ServiceHost,
    rules_host: ServiceHost,
    mall_host: ServiceHost,
    rules: RulesStub,
    tmp_path: Path,
) -> None:
    await define_program(rules)
    token = bearer("schemathesis-user", "admin", "events:write")["Authorization"]
    async with serving_gateway(
        gateway_env(ledger_host.port, rules_host.port, mall_host.port)
    ) as url:
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
