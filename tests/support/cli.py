"""The `points` command as the tests run it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

POINTS = str(Path(sys.executable).parent / "points")


async def points(*args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        POINTS,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
