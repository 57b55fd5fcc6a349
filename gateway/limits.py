"""Limits at the edge, applied before a route reads anything (a pure ASGI middleware).

- Headers: all request headers together at most GATEWAY_MAX_HEADER_BYTES (431 otherwise).
- Body: at most GATEWAY_MAX_BODY_BYTES, refused from Content-Length before reading (413), and
  counted while reading when the client streams it (chunked).
- Bodies are JSON: anything else is 415 (a missing Content-Type included).
- An authenticated caller's refused body is read and discarded before the answer, up to
  DRAIN_BYTES and DRAIN_SECONDS: a client that writes its whole body before reading (Python's
  http.client, many SDKs) then reads the 413 instead of a connection reset. Past either bound,
  or for an anonymous caller, the connection is closed unread.
- Authentication first: a request with a body to an authenticated route (/v1/...) has its
  token checked before one byte of the body is read, so an anonymous client cannot make the
  gateway read or parse megabytes. The verified caller is passed on to the route.
Put the same or tighter limits on the proxy in front of the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import Authenticator
from gateway.errors import PROBLEM, HttpError, problem
from gateway.settings import EdgeLimits
from services.common.validation import ascii_number

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0


class EdgeGuard:
    def __init__(self, app: ASGIApp, limits: EdgeLimits, authenticator: Authenticator) -> None:
        self.app = app
        self.limits = limits
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._check(scope)
        except HttpError as error:
            if _has_body(scope["headers"]) and "principal" in scope.get("state", {}):
                await _drain(receive)
            await _refuse(send, error)
            return
        await self.app(scope, self._counting(receive), send)

    async def _check(self, scope: Scope) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if sum(len(k) + len(v) + 4 for k, v in headers) > self.limits.max_header_bytes:
            raise HttpError(
                431,
                "HEADERS_TOO_LARGE",
                f"request headers exceed {self.limits.max_header_bytes} bytes",
            )
        if scope["method"] in BODY_METHODS and scope["path"].startswith("/v1/"):
            authorization = next((v for k, v in headers if k == b"authorization"), None)
            cookie = next((v for k, v in headers if k == b"cookie"), None)
            principal = await self.authenticator.verify(
                authorization.decode("latin-1") if authorization is not None else None,
                cookie.decode("latin-1") if cookie is not None else None,
            )
            scope.setdefault("state", {})["principal"] = principal
        length = next((v for k, v in headers if k == b"content-length"), None)
        declared = ascii_number(length.decode("latin-1"), 19) if length is not None else 0
        if declared is None or declared > self.limits.max_body_bytes:
            raise _too_large(self.limits.max_body_bytes)
        if scope["method"] in BODY_METHODS and _has_body(headers) and not _is_json(headers):
            raise HttpError(
                415, "UNSUPPORTED_MEDIA_TYPE", "request bodies must be JSON (application/json)"
            )

    def _counting(self, receive: Receive) -> Receive:
        limit = self.limits.max_body_bytes
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if message.get("more_body", False):
                        await _drain(receive)
                    raise _too_large(limit)
            return message

        return counted


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key == b"content-length" and value not in (b"0", b""):
            return True
        if key == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    kind = next((v for k, v in headers if k == b"content-type"), b"")
    media = kind.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


async def _drain(receive: Receive) -> None:
    """Read and discard the rest of a refused body, within DRAIN_BYTES and DRAIN_SECONDS."""

    async def discard() -> None:
        seen = 0
        while seen <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            seen += len(message.get("body", b""))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(discard(), DRAIN_SECONDS)


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "BODY_TOO_LARGE", f"the request body exceeds {limit} bytes")


async def _refuse(send: Send, error: HttpError) -> None:
    payload = json.dumps(problem(error.code, error.reason, error.message)).encode()
    headers: list[Any] = [
        (b"content-type", PROBLEM.encode()),
        (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close"),
    ]
    if error.code == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": error.code, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
