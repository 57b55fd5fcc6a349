"""The browser tests' suite: see tests/support/console.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.console import Console, console_suite


@pytest.fixture
async def console(private_database: str, request: pytest.FixtureRequest) -> AsyncIterator[Console]:
    async with console_suite(private_database, request) as suite:
        yield suite
