"""Crash safety: SIGKILL the ledger during a load of credits, restart it, and check that every
acknowledged request is present exactly once and the audit is clean."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter

import grpc

from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from tests.support.hosts import free_port, spawn, wait_serving

USERS = [f"crash-{uuid.uuid4().hex[:8]}-{n}" for n in range(8)]


def credit(n: int) -> pb.CreditRequest:
    return pb.CreditRequest(
        request_id=f"load-{n}", user_id=USERS[n % len(USERS)], amount=n % 50 + 1, source="crash"
    )


async def test_sigkill_during_load_loses_no_acknowledged_credit(database_url: str) -> None:
    port = free_port()
    env = {"DATABASE_URL": database_url, "LEDGER_PORT": str(port), "LOG_LEVEL": "ERROR"}
    address = f"127.0.0.1:{port}"
    acknowledged: dict[int, str] = {}  # request number -> transfer id
    process = spawn("services.ledger.server", env)
    try:
        await wait_serving(address)
        async with grpc.aio.insecure_channel(address) as channel:
            ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
            counter = iter(range(1_000_000))
            enough = asyncio.Event()

            async def client() -> None:
                while True:
                    n = next(counter)
                    try:
                        response = await ledger.Credit(credit(n), timeout=5)
                    except grpc.aio.AioRpcError:
                        return  # the server died under us
                    acknowledged[n] = response.transfer.transfer_id
                    if len(acknowledged) >= 300:
                        enough.set()

            load = [asyncio.ensure_future(client()) for _ in range(16)]
            await asyncio.wait_for(enough.wait(), 60)
            process.send_signal(signal.SIGKILL)
            await asyncio.gather(*load)
        process.wait(10)
        sent = next(counter)  # every request number handed out, acknowledged or not
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(acknowledged) >= 300

    process = spawn("services.ledger.server", env)
    try:
        await wait_serving(address)
        async with grpc.aio.insecure_channel(address) as channel:
            ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
            # An acknowledged credit replays to the very same transfer.
            for n, transfer_id in acknowledged.items():
                again = await ledger.Credit(credit(n))
                assert again.transfer.transfer_id == transfer_id
            # Retrying the unacknowledged ones applies each at most once, too.
            for n in range(sent):
                await ledger.Credit(credit(n))
            request_ids: Counter[str] = Counter()
            for user in USERS:
                token = ""
                while True:
                    page = await ledger.ListTransfers(
                        pb.ListTransfersRequest(user_id=user, page_size=500, page_token=token)
                    )
                    request_ids.update(t.request_id for t in page.transfers)
                    token = page.next_page_token
                    if not token:
                        break
            assert all(count == 1 for count in request_ids.values())
            assert set(request_ids) == {f"load-{n}" for n in range(sent)}
            balances = await ledger.BatchGetBalances(pb.BatchGetBalancesRequest(user_ids=USERS))
            assert sum(b.available for b in balances.balances) == sum(
                credit(n).amount for n in range(sent)
            )
            report = await ledger.Audit(pb.AuditRequest())
            assert report.ok, list(report.violations)
    finally:
        process.terminate()
        process.wait(10)
