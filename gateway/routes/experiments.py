"""Admin routes for experiments on rules and campaigns: draft, start, read the results,
conclude (optionally promoting an arm), and export who is in which arm.

The experiment travels in the gateway's dialect of loyalty.rules.v1.Experiment (gateway/
dialect.py), so every field is typed in the OpenAPI document as in the protos.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from gateway.auth import operator
from gateway.backends import Backends
from gateway.dialect import from_json, model_for, to_json
from gateway.routes.common import (
    PAGE_SIZE,
    Operator,
    PageSize,
    PageToken,
    backends,
    idempotency_key,
)
from loyalty.rules.v1 import rules_pb2 as rpb

router = APIRouter(prefix="/v1/admin/experiments", tags=["admin"], dependencies=[Depends(operator)])
Services = Annotated[Backends, Depends(backends)]
Idem = Annotated[str, Depends(idempotency_key)]
ExperimentId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,57}$")]
Json = dict[str, Any]

if TYPE_CHECKING:  # made at run time from the protos
    ExperimentIn = BaseModel
else:
    ExperimentIn = model_for(rpb.Experiment.DESCRIPTOR, request=True)


class Promotion(BaseModel):
    arm_id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,57}$",
        description="the TREATMENT arm whose draft rules and campaigns become new versions",
    )


@router.get("", response_model=model_for(rpb.ListExperimentsResponse.DESCRIPTOR))
async def list_experiments(services: Services) -> Json:
    """Every experiment, newest first (without results)."""
    reply = await services.rules.ListExperiments(
        rpb.ListExperimentsRequest(), timeout=services.timeout
    )
    return to_json(reply)


@router.put("/{experiment_id}", response_model=model_for(rpb.Experiment.DESCRIPTOR))
async def put_experiment(
    experiment_id: ExperimentId,
    body: ExperimentIn,
    services: Services,
    idem: Idem,
    caller: Operator,
) -> Json:
    """Create or replace a draft experiment; a started one cannot change (409
    EXPERIMENT_NOT_DRAFT)."""
    draft = rpb.Experiment()
    from_json(body.model_dump(exclude_none=True), draft)
    draft.experiment_id = experiment_id  # the path names it
    request = rpb.UpsertExperimentRequest(experiment=draft, request_id=idem, actor=caller.user_id)
    reply = await services.rules.UpsertExperiment(request, timeout=services.admin_timeout)
    return to_json(reply.experiment)


@router.get("/{experiment_id}", response_model=model_for(rpb.GetExperimentResponse.DESCRIPTOR))
async def get_experiment(experiment_id: ExperimentId, services: Services) -> Json:
    """The experiment and its results so far: per arm, every metric's mean, and its difference
    from the control with an interval at the experiment's confidence."""
    reply = await services.rules.GetExperiment(
        rpb.GetExperimentRequest(experiment_id=experiment_id), timeout=services.admin_timeout
    )
    return to_json(reply)


@router.post("/{experiment_id}/start", response_model=model_for(rpb.Experiment.DESCRIPTOR))
async def start_experiment(
    experiment_id: ExperimentId, services: Services, idem: Idem, caller: Operator
) -> Json:
    """Start assigning members to the arms (announced as experiment.started)."""
    request = rpb.StartExperimentRequest(
        experiment_id=experiment_id, request_id=idem, actor=caller.user_id
    )
    reply = await services.rules.StartExperiment(request, timeout=services.admin_timeout)
    return to_json(reply.experiment)


async def _conclude(
    services: Services, experiment_id: str, arm_id: str, idem: str, actor: str
) -> Json:
    request = rpb.ConcludeExperimentRequest(
        experiment_id=experiment_id, promote_arm_id=arm_id, request_id=idem, actor=actor
    )
    return to_json(await services.rules.ConcludeExperiment(request, timeout=services.admin_timeout))


@router.post(
    "/{experiment_id}/conclude",
    response_model=model_for(rpb.ConcludeExperimentResponse.DESCRIPTOR),
)
async def conclude_experiment(
    experiment_id: ExperimentId, services: Services, idem: Idem, caller: Operator
) -> Json:
    """Stop the experiment: everyone earns by the program again (experiment.concluded)."""
    return await _conclude(services, experiment_id, "", idem, caller.user_id)


@router.post(
    "/{experiment_id}/promote",
    response_model=model_for(rpb.ConcludeExperimentResponse.DESCRIPTOR),
)
async def promote_arm(
    experiment_id: ExperimentId, body: Promotion, services: Services, idem: Idem, caller: Operator
) -> Json:
    """Stop the experiment and make the arm's drafts new versions of their rules and campaigns,
    for every member. An arm that is not one of its TREATMENTs is refused (400, field
    `promote_arm_id`)."""
    return await _conclude(services, experiment_id, body.arm_id, idem, caller.user_id)


@router.get(
    "/{experiment_id}/assignments",
    response_model=model_for(rpb.ListAssignmentsResponse.DESCRIPTOR),
)
async def list_assignments(
    experiment_id: ExperimentId,
    services: Services,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> Json:
    """Who is in which arm, by member id; pass `next_page_token` back for more."""
    request = rpb.ListAssignmentsRequest(
        experiment_id=experiment_id, page_size=page_size, page_token=page_token
    )
    return to_json(await services.rules.ListAssignments(request, timeout=services.timeout))
