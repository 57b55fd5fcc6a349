"""Many clients at once on one member: exact outcomes, never negative, exactly once."""

import asyncio

import grpc

from loyalty.ledger.v1 import ledger_pb2 as pb
from services.common.errors import parse_rpc_error
from services.common.timestamps import to_timestamp
from tests.support.ledger_calls import Stub, audit_clean, balance, credit, debit, in_seconds, rid


async def _outcome(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return parse_rpc_error(exc).reason
    return "OK"


async def test_100_concurrent_debits_of_10_against_500(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 500)
    outcomes = await asyncio.gather(*(_outcome(debit(ledger, user, 10)) for _ in range(100)))
    assert outcomes.count("OK") == 50
    assert outcomes.count("INSUFFICIENT_POINTS") == 50
    assert (await balance(ledger, user)).available == 0
    await audit_clean(ledger)


async def test_50_concurrent_replays_apply_once(ledger: Stub, user: str) -> None:
    request_id = rid()
    responses = await asyncio.gather(
        *(credit(ledger, user, 7, request_id=request_id) for _ in range(50))
    )
    assert len({r.transfer.transfer_id for r in responses}) == 1
    history = await ledger.ListTransfers(pb.ListTransfersRequest(user_id=user))
    assert len(history.transfers) == 1
    assert (await balance(ledger, user)).available == 7


async def test_concurrent_holds_never_over_reserve(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 100)
    deadline = to_timestamp(in_seconds(60))
    outcomes = await asyncio.gather(
        *(
            _outcome(
                ledger.Hold(
                    pb.HoldRequest(
                        request_id=rid(), user_id=user, amount=30, deadline_time=deadline
                    )
                )
            )
            for _ in range(20)
        )
    )
    assert outcomes.count("OK") == 3
    current = await balance(ledger, user)
    assert (current.available, current.held) == (10, 90)
    await audit_clean(ledger)
