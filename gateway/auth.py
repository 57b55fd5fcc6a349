"""Bearer-token authentication: `sub` is the user id; scopes `admin` and `events:write`.

A user acts only on their own wallet: routes under /v1/me take the user from the token,
never from the path or body.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt
from fastapi import Request

from gateway.errors import HttpError
from gateway.settings import AuthSettings
from services.common.validation import MAX_USER_ID, storable

SCOPES = ("admin", "events:write")


@dataclass(frozen=True)
class Principal:
    user_id: str
    scopes: frozenset[str]


class Authenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings

    def verify(self, header: str | None) -> Principal:
        if not header or not header.lower().startswith("bearer "):
            raise HttpError(401, "MISSING_TOKEN", "an Authorization: Bearer token is required")
        token = header[7:].strip()
        try:
            claims = jwt.decode(
                token,
                self.settings.key,
                algorithms=[self.settings.algorithm],
                issuer=self.settings.issuer,
                audience=self.settings.audience,
                options={"require": ["sub", "exp"], "verify_aud": bool(self.settings.audience)},
            )
        except jwt.ExpiredSignatureError:
            raise HttpError(401, "TOKEN_EXPIRED", "the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise HttpError(401, "INVALID_TOKEN", f"the token is not valid: {exc}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not storable(subject, MAX_USER_ID):
            raise HttpError(401, "INVALID_TOKEN", "the token's sub must be a user id")
        scope = claims.get("scope", "")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return Principal(subject, scopes)


def requires(scope: str | None = None) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller, who must hold `scope` when one is named."""

    async def dependency(request: Request) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        principal = authenticator.verify(request.headers.get("authorization"))
        if scope is not None and scope not in principal.scopes:
            raise HttpError(
                403, "MISSING_SCOPE", f"this route needs the {scope!r} scope", {"scope": scope}
            )
        return principal

    return dependency


def mint(
    settings: AuthSettings, subject: str, scopes: tuple[str, ...] = (), ttl_seconds: int = 3600
) -> str:
    """A token for development and tests (HS256 only: RS256 needs the private key)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
    if scopes:
        claims["scope"] = " ".join(scopes)
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    return jwt.encode(claims, settings.key, algorithm="HS256")
