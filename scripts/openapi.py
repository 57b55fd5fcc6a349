#!/usr/bin/env python3
"""Write the gateway's OpenAPI document to `openapi.json` (`make openapi`); `--check` fails
when the committed file is not what the code describes (run in the tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gateway.app import create_app
from gateway.settings import GatewaySettings

PATH = Path(__file__).resolve().parent.parent / "openapi.json"


def document() -> str:
    settings = GatewaySettings.from_env({"POINTS_ENV": "development"})
    return json.dumps(create_app(settings).openapi(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    current = document()
    if "--check" in argv:
        if not PATH.exists() or PATH.read_text() != current:
            print("openapi.json is stale: run `make openapi` and commit it", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(current)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
