"""Mint a development token: `python -m gateway.token alice [admin] [events:write]`.

Uses GATEWAY_JWT_SECRET (or the development secret under POINTS_ENV=development).
"""

from __future__ import annotations

import sys

from gateway.auth import SCOPES, mint
from gateway.settings import GatewaySettings


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any(scope not in SCOPES for scope in argv[2:]):
        print(__doc__, file=sys.stderr)
        return 2
    settings = GatewaySettings.from_env()
    if settings.auth.algorithm != "HS256":
        print("only HS256 tokens can be minted here", file=sys.stderr)
        return 2
    print(mint(settings.auth, argv[1], tuple(argv[2:]), ttl_seconds=24 * 3600))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
