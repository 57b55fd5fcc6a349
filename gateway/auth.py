"""Bearer-token authentication: `sub` is the user id; scopes `admin` and `events:write`.

A user acts only on their own wallet: routes under /v1/me take the user from the token,
never from the path or body. Tokens are HS256 with a shared secret, or RS256/ES256 with the
identity provider's public key (PEM) or its JWKS URL (keys cached, looked up by `kid`).
The token is checked before the request's body is read (see `limits.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import cookie_parser

from gateway import roles
from gateway.errors import HttpError
from gateway.settings import AuthSettings, OidcSettings
from services.common.validation import MAX_USER_ID, identifier_problem

SCOPES = ("admin", "events:write")
SESSION_COOKIE = "points_session"  # an operator's console session (gateway/oidc.py)


@dataclass(frozen=True)
class Principal:
    user_id: str
    scopes: frozenset[str]
    roles: frozenset[str] = frozenset()  # an operator's (gateway/roles.py)
    approved: bool = False  # carrying out an approved change (gateway/approvals.py)


class Sessions:
    """The operator's session cookie: signed, with its own end."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._signer = URLSafeTimedSerializer(settings.session_secret, salt="points-session")

    def issue(self, subject: str, roles: list[str]) -> str:
        ends = int(time.time()) + self.settings.session_seconds
        return self._signer.dumps({"sub": subject, "roles": roles, "exp": ends})

    def read(self, cookie: str) -> dict[str, Any]:
        """The session's claims; 401 when the cookie is forged or its session ended."""
        try:
            claims: dict[str, Any] = self._signer.loads(cookie)
        except BadSignature:
            raise HttpError(401, "INVALID_TOKEN", "the session cookie is not valid") from None
        if claims.get("exp", 0) <= time.time():
            raise HttpError(401, "TOKEN_EXPIRED", "the session has ended: sign in again")
        return claims


class Authenticator:
    def __init__(self, settings: AuthSettings, oidc: OidcSettings | None = None) -> None:
        self.settings = settings
        # Console sessions exist only where operators sign in with an identity provider.
        self.sessions = Sessions(oidc) if oidc is not None and oidc.issuer else None
        self._jwks = (
            jwt.PyJWKClient(
                settings.jwks_url,
                cache_keys=True,
                lifespan=300,
                timeout=5,
                cooldown_duration=settings.jwks_refresh_seconds,
            )
            if settings.jwks_url
            else None
        )

    async def _key(self, token: str) -> Any:
        if self._jwks is None:
            return self.settings.key
        try:
            # PyJWKClient fetches with urllib (blocking): off the event loop. Keys are cached.
            found = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError:
            raise HttpError(
                503, "IDENTITY_PROVIDER_UNAVAILABLE", "the token's keys could not be fetched"
            ) from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise HttpError(401, "INVALID_TOKEN", f"the token is not valid: {exc}") from None
        return found.key

    async def verify(self, header: str | None, cookies: str | None = None) -> Principal:
        """The caller of a bearer token, else of a console session cookie."""
        if not header and cookies and self.sessions is not None:
            session = cookie_parser(cookies).get(SESSION_COOKIE)
            if session:
                claims = self.sessions.read(session)
                return Principal(claims["sub"], frozenset(), roles.roles_of(claims["roles"], ()))
        if not header or not header.lower().startswith("bearer "):
            raise HttpError(401, "MISSING_TOKEN", "an Authorization: Bearer token is required")
        token = header[7:].strip()
        key = await self._key(token)
        try:
            claims = jwt.decode(
                token,
                key,
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
        if not isinstance(subject, str) or identifier_problem(subject, MAX_USER_ID) is not None:
            raise HttpError(401, "INVALID_TOKEN", "the token's sub must be a user id")
        scope = claims.get("scope", "")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return Principal(
            subject, scopes, roles.roles_of(claims.get(self.settings.roles_claim), scopes)
        )


async def _caller(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # not verified at the edge yet (requests without a body)
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.verify(
            request.headers.get("authorization"), request.headers.get("cookie")
        )
    return principal


async def operator(request: Request) -> Principal:
    """A FastAPI dependency for admin routes: the caller, whose roles allow the route."""
    principal = await _caller(request)
    roles.check(request, principal.roles)
    return principal


def requires(scope: str | None = None) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller, who must hold `scope` when one is named."""

    async def dependency(request: Request) -> Principal:
        principal = await _caller(request)
        if scope is not None and scope not in principal.scopes:
            raise HttpError(
                403, "MISSING_SCOPE", f"this route needs the {scope!r} scope", {"scope": scope}
            )
        return principal

    return dependency


def mint(
    settings: AuthSettings,
    subject: str,
    scopes: tuple[str, ...] = (),
    ttl_seconds: int = 3600,
    roles: tuple[str, ...] = (),
) -> str:
    """A token for development and tests (HS256 only: RS256 needs the private key)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
    if scopes:
        claims["scope"] = " ".join(scopes)
    if roles:
        claims[settings.roles_claim] = list(roles)
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    return jwt.encode(claims, settings.key, algorithm="HS256")
