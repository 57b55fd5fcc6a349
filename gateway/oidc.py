"""Operators sign in to the console with the company's identity provider: OpenID Connect,
authorization code with PKCE (S256), the gateway as the confidential client (Authlib).

- `GET /console/auth/login` sends the browser to the provider; the state, nonce and code
  verifier wait in a short signed cookie (`points_login`, SameSite=Lax: the provider's
  redirect back is a cross-site navigation, which a Strict cookie would not come with).
- `GET /console/auth/callback` checks the state, exchanges the code once, verifies the ID
  token (signature against the provider's JWKS, issuer, audience, expiry, nonce) and sets the
  operator's session: a signed cookie (`points_session`: HttpOnly, SameSite=Strict, Secure
  over https) holding the subject and roles (the roles claim, GATEWAY_ROLES_CLAIM) until
  GATEWAY_SESSION_SECONDS. The API takes it in place of a bearer token; a cross-site request
  never carries it.
- When the session ends, the console signs in again through the provider (silently while the
  provider's own session lasts).
- `POST /console/auth/logout` ends the session and answers where to end the provider's.

Configured by GATEWAY_OIDC_ISSUER, GATEWAY_OIDC_CLIENT_ID, GATEWAY_OIDC_CLIENT_SECRET and
GATEWAY_OIDC_REDIRECT_URL (this gateway's /console/auth/callback as the provider knows it).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.middleware.sessions import SessionMiddleware

from gateway.auth import SESSION_COOKIE, Sessions
from gateway.errors import HttpError
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def _signed_in(sessions: Sessions, gateway: GatewaySettings, claims: Any) -> RedirectResponse:
    """Back to the console, with the operator's session cookie."""
    roles = claims.get(gateway.auth.roles_claim) or []
    answer = RedirectResponse("/console", status_code=303)
    answer.set_cookie(
        SESSION_COOKIE,
        sessions.issue(str(claims["sub"]), list(roles) if isinstance(roles, list) else []),
        max_age=gateway.oidc.session_seconds,
        httponly=True,
        secure=gateway.oidc.secure,
        samesite="strict",
        path="/",
    )
    return answer


def install(app: FastAPI, gateway: GatewaySettings) -> None:
    """The sign-in routes (only the console's configuration when no provider is set)."""
    settings, roles_claim = gateway.oidc, gateway.auth.roles_claim
    development = gateway.telemetry.environment == "development"

    @app.get("/console/auth/config", include_in_schema=False)
    async def config() -> dict[str, bool]:
        # Pasting a token stays for development only once a provider signs operators in.
        return {"oidc": settings.issuer is not None, "paste": development or not settings.issuer}

    if settings.issuer is None:
        return
    oauth = OAuth()
    provider = oauth.register(
        "company",
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": f"openid profile {roles_claim}", "code_challenge_method": "S256"},
    )
    sessions: Sessions = app.state.authenticator.sessions
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret,
        session_cookie="points_login",
        max_age=600,
        same_site="lax",
        https_only=settings.secure,
    )

    @app.get("/console/auth/login", include_in_schema=False)
    async def login(request: Request) -> Any:
        try:
            return await provider.authorize_redirect(request, settings.redirect_url)
        except httpx.HTTPError as exc:
            log.warning("identity provider unreachable", extra={"error": str(exc)})
            raise HttpError(
                503, "IDENTITY_PROVIDER_UNAVAILABLE", "the identity provider cannot be reached"
            ) from None

    @app.get("/console/auth/callback", include_in_schema=False)
    async def callback(request: Request) -> Any:
        try:
            token = await provider.authorize_access_token(request)
        except OAuthError as exc:  # a wrong state, a code used before, a forged ID token
            raise HttpError(400, "SIGN_IN_FAILED", f"sign-in failed: {exc.error}") from None
        except httpx.HTTPError:
            raise HttpError(
                503, "IDENTITY_PROVIDER_UNAVAILABLE", "the identity provider cannot be reached"
            ) from None
        return _signed_in(sessions, gateway, token["userinfo"])

    @app.post("/console/auth/logout", include_in_schema=False)
    async def logout(request: Request) -> JSONResponse:
        metadata = await provider.load_server_metadata()
        ending = metadata.get("end_session_endpoint")
        back = settings.redirect_url.removesuffix("/auth/callback")  # the console
        query = urlencode({"client_id": settings.client_id, "post_logout_redirect_uri": back})
        answer = JSONResponse({"end_session_url": f"{ending}?{query}" if ending else None})
        answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return answer
