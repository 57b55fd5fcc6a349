"""Mint a token for development and tests (HS256, the gateway's own secret).

    python -m gateway.token alice                       # a member
    python -m gateway.token ops --scope admin           # an operator (the admin role)
    python -m gateway.token ana --role finance          # an operator with one role
    python -m gateway.token crm --scope events:write --ttl 3600

Uses GATEWAY_JWT_SECRET (or the development secret under POINTS_ENV=development). In
production, tokens come from your identity provider (RS256/ES256, see the README).
"""

from __future__ import annotations

import argparse
import sys

from gateway import roles
from gateway.auth import SCOPES, mint
from gateway.settings import GatewaySettings
from services.common.settings import SettingsError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.token",
        description="Mint a bearer token for the gateway (HS256, development and tests).",
    )
    parser.add_argument("user_id", help="the token's subject: the member (or operator) id")
    parser.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        default=[],
        help="a scope to grant (repeatable): admin, events:write",
    )
    parser.add_argument(
        "--role",
        action="append",
        choices=roles.ROLES,
        default=[],
        help="an operator role to grant (repeatable): viewer, operator, finance, admin",
    )
    parser.add_argument(
        "--ttl", type=int, default=24 * 3600, help="seconds until it expires (default: a day)"
    )
    # Scopes may also follow the user id, as in earlier versions: `alice admin`.
    parser.add_argument("scopes", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    unknown = [s for s in args.scopes if s not in SCOPES]
    if unknown:
        parser.error(f"unknown scope {unknown[0]!r} (choose from {', '.join(SCOPES)})")
    try:
        settings = GatewaySettings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if settings.auth.algorithm != "HS256":
        print("only HS256 tokens can be minted here; use your identity provider", file=sys.stderr)
        return 2
    scopes = tuple(dict.fromkeys([*args.scope, *args.scopes]))
    granted = tuple(dict.fromkeys(args.role))
    print(mint(settings.auth, args.user_id, scopes, ttl_seconds=args.ttl, roles=granted))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
