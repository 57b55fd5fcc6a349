"""Helpers for calling the gateway in tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from gateway import examples
from gateway.auth import mint
from gateway.settings import DEV_SECRET, AuthSettings

AUTH = AuthSettings("HS256", DEV_SECRET, None, None)


def bearer(user: str, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(AUTH, user, scopes)}"}


def gateway_env(
    ledger_port: int, rules_port: int, mall_port: int, webhooks_port: int
) -> dict[str, str]:
    return {
        "LEDGER_ADDR": f"127.0.0.1:{ledger_port}",
        "RULES_ADDR": f"127.0.0.1:{rules_port}",
        "MALL_ADDR": f"127.0.0.1:{mall_port}",
        "WEBHOOKS_ADDR": f"127.0.0.1:{webhooks_port}",
        "BACKEND_TIMEOUT_SECONDS": "1",
        "GATEWAY_SSE_KEEPALIVE_SECONDS": "0.3",
    }


def assert_error(response: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and reason."""
    assert response.status_code == code, response.text
    assert response.headers["content-type"] == "application/problem+json"
    error = response.json()
    assert set(error) == {"type", "title", "status", "detail", "reason", "violations", "metadata"}
    assert (error["status"], error["reason"]) == (code, reason)
    assert error["type"] == f"urn:points:problem:{reason.lower().replace('_', '-')}"
    return dict(error)


async def operator_keys(request: httpx.Request) -> None:
    """An httpx request hook: operators' changes carry an Idempotency-Key, as a real operator
    console sends one per change; tests that check the key itself set their own."""
    mutating = request.method in ("POST", "PUT", "PATCH", "DELETE")
    if mutating and request.url.path.startswith("/v1/admin/"):
        request.headers.setdefault("Idempotency-Key", uuid.uuid4().hex)


async def send_request_examples(http: httpx.AsyncClient, caller: dict[str, str]) -> None:
    """Send each hand-written request example of the served OpenAPI document as documented
    (in the order they are written: a budget before the campaign drawing on it); each must
    be accepted."""
    document = (await http.get("/openapi.json")).json()
    by_schema = {
        media["schema"]["$ref"].rsplit("/", 1)[-1]: (path, method, operation, media["example"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for media in operation.get("requestBody", {}).get("content", {}).values()
        if "$ref" in media["schema"]
    }
    for name in examples.REQUESTS:
        path, method, operation, body = by_schema[name]
        assert body == examples.REQUESTS[name]
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                path = path.replace("{" + parameter["name"] + "}", str(parameter["example"]))
        headers = {**caller, "Idempotency-Key": uuid.uuid4().hex}
        reply = await http.request(method, path, json=body, headers=headers)
        assert reply.is_success, f"{method.upper()} {path}: {reply.text}"
