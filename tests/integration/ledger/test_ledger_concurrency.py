"""Many clients at once on one member: exact outcomes, never negative, exactly once."""

import asyncio

import grpc

from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from services.common.errors import parse_rpc_error
from services.common.timestamps import to_timestamp
from services.ledger.server import SPEC as LEDGER
from tests.support.hosts import running
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


async def test_a_full_write_queue_refuses_at_once_and_retries_apply_once(
    private_database: str,
) -> None:
    """With room for one queued write, 64 concurrent credits overflow it: the overflow is
    RESOURCE_EXHAUSTED OVERLOADED, and retried with the same request ids each applies once."""
    async with (
        running(LEDGER, private_database, {"LEDGER_WRITE_QUEUE_LIMIT": "1"}) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        ids = [rid() for _ in range(64)]
        refused: list[str] = []

        async def credit_until_done(request_id: str) -> None:
            for _ in range(200):
                try:
                    await credit(ledger, "crowd", 1, request_id=request_id)
                    return
                except grpc.aio.AioRpcError as exc:
                    error = parse_rpc_error(exc)
                    assert (exc.code(), error.reason) == (
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "OVERLOADED",
                    )
                    refused.append(request_id)
                    await asyncio.sleep(0.01)
            raise AssertionError("never admitted")

        await asyncio.gather(*(credit_until_done(i) for i in ids))
        assert refused  # the queue did overflow
        assert (await balance(ledger, "crowd")).available == 64
        await audit_clean(ledger)
