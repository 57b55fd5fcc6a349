"""The audit trail of operators' changes: every admin request that can change something
(a method other than GET under /v1/admin/, carrying an Idempotency-Key) is recorded in the
audit log (the webhooks service's RecordAudit) with who (subject, roles), what (route, path,
request and answer bodies), when, and from where (address, User-Agent) before its answer
leaves. A refusal is recorded too; an answer of 5xx is not (the change may not have
happened; its retry is). A replay under the same key is recorded once.

Recording must not turn a done change into an error: when the log cannot be written, the
change's answer still goes out, and the failure is logged and counted
(`points.audit.failures`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import grpc
from opentelemetry import metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.backends import Backends
from loyalty.webhooks.v1 import webhooks_pb2 as pb

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024  # characters of each body kept (the log's limit; approvals' too)
_failures = metrics.get_meter("points.gateway").create_counter(
    "points.audit.failures", description="operators' changes the audit log could not record"
)


def _header(scope: Scope, name: bytes) -> str:
    value = next((v for k, v in scope["headers"] if k == name), b"")
    return value.decode("latin-1")


def _text(body: bytes) -> str:
    """A body as the log keeps it: a webhook's signing secret is never written down."""
    text = body.decode("utf-8", "replace")
    if '"secret"' in text:
        try:
            text = json.dumps(
                _redacted(json.loads(text)), ensure_ascii=False, separators=(",", ":")
            )
        except ValueError:
            text = "(not kept: it held a secret)"
    return text[:MAX_BODY]


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[redacted]" if k == "secret" else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


class AuditTrail:
    def __init__(self, app: ASGIApp, backends: Backends) -> None:
        self.app = app
        self.backends = backends

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        changes = (
            scope["type"] == "http"
            and scope["method"] != "GET"
            and scope["path"].startswith("/v1/admin/")
        )  # cheap first: a member's request never looks at its headers here
        key = _header(scope, b"idempotency-key") if changes else ""
        if not key:
            await self.app(scope, receive, send)
            return
        asked: list[bytes] = []
        held: list[Message] = []

        async def receiving() -> Message:
            message = await receive()
            asked.append(message.get("body", b""))
            return message

        async def holding(message: Message) -> None:
            held.append(message)

        await self.app(scope, receiving, holding)
        await self._record(scope, key, b"".join(asked), held)
        for message in held:
            await send(message)

    async def _record(self, scope: Scope, key: str, asked: bytes, held: list[Message]) -> None:
        principal: Any = scope.get("state", {}).get("principal")
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        if principal is None or start is None or start["status"] >= 500:
            return
        answer = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        route = scope.get("route")
        client = scope.get("client")
        entry = pb.AuditEntry(
            entry_id=f"{principal.user_id}:{key}"[:200],
            actor=principal.user_id,
            roles=sorted(principal.roles),
            action=f"{scope['method']} {route.path if route is not None else scope['path']}",
            target=scope["path"][:1000],
            request_json=_text(asked),
            response_json=_text(answer),
            status=start["status"],
            ip=client[0] if client else "",
            user_agent=_header(scope, b"user-agent")[:500],
        )
        try:
            await self.backends.webhooks.RecordAudit(
                pb.RecordAuditRequest(entry=entry), timeout=self.backends.timeout
            )
        except grpc.aio.AioRpcError as exc:
            _failures.add(1)
            log.error(
                "audit entry not recorded", extra={"entry_id": entry.entry_id, "error": str(exc)}
            )
