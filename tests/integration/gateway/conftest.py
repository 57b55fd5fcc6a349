"""The gateway every HTTP test module shares: on the session's ledger, rules and mall, with the
demo program defined."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.common.server import ServiceHost
from tests.support.gateway_calls import gateway_env, operator_keys
from tests.support.hosts import serving_gateway
from tests.support.rules_calls import RulesStub, define_program


@pytest.fixture(scope="module")
async def http(
    ledger_host: ServiceHost,
    rules_host: ServiceHost,
    mall_host: ServiceHost,
    webhooks_host: ServiceHost,
    rules: RulesStub,
) -> AsyncIterator[httpx.AsyncClient]:
    await define_program(rules)
    env = gateway_env(ledger_host.port, rules_host.port, mall_host.port, webhooks_host.port)
    async with serving_gateway(env) as url:
        async with httpx.AsyncClient(
            base_url=url, timeout=10, event_hooks={"request": [operator_keys]}
        ) as client:
            yield client
