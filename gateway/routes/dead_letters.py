"""Admin routes for dead letters (scope `admin`): work a service's peer refused for good, kept
after its outcome was settled, for an operator to retry or resolve. Rules and mall each keep
their own; `service` says whose."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.auth import operator
from gateway.backends import Backends
from gateway.dialect import model_for, to_json
from gateway.routes.common import PAGE_SIZE, PageSize, PageToken, backends, idempotency_key
from loyalty.common.v1 import common_pb2
from loyalty.mall.v1 import mall_pb2 as mpb
from loyalty.rules.v1 import rules_pb2 as rpb

router = APIRouter(
    prefix="/v1/admin/dead-letters",
    tags=["admin"],
    dependencies=[Depends(operator)],
)
Services = Annotated[Backends, Depends(backends)]
Idem = Annotated[str, Depends(idempotency_key)]
Service = Literal["rules", "mall"]
Status = Literal["OPEN", "RETRIED", "RESOLVED"]
PACKAGES = {"rules": rpb, "mall": mpb}


class LetterRef(BaseModel):
    service: Service
    user_id: str = Field(min_length=1, max_length=128)
    letter_id: str = Field(pattern=r"^[0-9]{1,18}$")


class Resolution(LetterRef):
    note: str = Field(min_length=1, max_length=500)


def _stub(services: Backends, service: Service) -> Any:
    return services.rules if service == "rules" else services.mall


@router.get("", response_model=model_for(rpb.ListDeadLettersResponse.DESCRIPTOR))
async def list_dead_letters(
    services: Services,
    service: Service,
    status: Status | None = None,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> dict[str, Any]:
    """One service's dead letters, oldest first, optionally of one status."""
    pb = PACKAGES[service]
    number = common_pb2.DeadLetterStatus.Value(f"DEAD_LETTER_STATUS_{status}") if status else 0
    reply = await _stub(services, service).ListDeadLetters(
        pb.ListDeadLettersRequest(status=number, page_size=page_size, page_token=page_token),
        timeout=services.timeout,
    )
    return to_json(reply)


@router.post("/retry", response_model=model_for(common_pb2.DeadLetter.DESCRIPTOR))
async def retry_dead_letter(body: LetterRef, services: Services, idem: Idem) -> dict[str, Any]:
    """Run a letter's work again (409 with the reason when it is refused again)."""
    pb = PACKAGES[body.service]
    reply = await _stub(services, body.service).RetryDeadLetter(
        pb.RetryDeadLetterRequest(user_id=body.user_id, letter_id=body.letter_id, request_id=idem),
        timeout=services.admin_timeout,
    )
    return to_json(reply.dead_letter)


@router.post("/resolve", response_model=model_for(common_pb2.DeadLetter.DESCRIPTOR))
async def resolve_dead_letter(body: Resolution, services: Services, idem: Idem) -> dict[str, Any]:
    """Close a letter with a note, without retrying it."""
    pb = PACKAGES[body.service]
    reply = await _stub(services, body.service).ResolveDeadLetter(
        pb.ResolveDeadLetterRequest(
            user_id=body.user_id, letter_id=body.letter_id, note=body.note, request_id=idem
        ),
        timeout=services.admin_timeout,
    )
    return to_json(reply.dead_letter)
