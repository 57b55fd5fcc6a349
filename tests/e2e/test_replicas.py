"""Two replicas of every service (separate processes) against one database, callers balancing
over both the way the services do in production (`<NAME>_ADDR` lists both; gRPC round_robin),
and two gateways: the concurrency cases of the single-replica tests hold exactly, jobs that
must run once do so while the replica that holds the lead is SIGKILLed, and a balance watcher
hears a change on either replica."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2 as mpb
from loyalty.mall.v1 import mall_pb2_grpc
from loyalty.rules.v1 import rules_pb2 as rpb
from loyalty.rules.v1 import rules_pb2_grpc
from loyalty.webhooks.v1 import webhooks_pb2 as wpb
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from services.common.peers import open_channel
from services.common.settings import peer_address
from services.common.timestamps import to_timestamp
from services.rules.experiment_design import arm_for
from tests.integration.ledger import test_ledger_concurrency as ledger_cases
from tests.integration.mall import test_mall_lottery as lottery_cases
from tests.integration.mall import test_mall_redemptions as mall_cases
from tests.integration.rules import test_rules_awards as award_cases
from tests.integration.rules import test_rules_campaigns as campaign_cases
from tests.integration.rules import test_rules_experiments as experiment_cases
from tests.support.databases import fresh_database
from tests.support.gateway_calls import bearer, operator_keys
from tests.support.ledger_calls import audit_clean, balance, credit, in_seconds, rid
from tests.support.metrics import scrape_port
from tests.support.receiver import Receiver, receiving
from tests.support.rules_calls import define_program, event
from tests.support.suite import Suite, running_suite

pytestmark = pytest.mark.slow

ENV = {
    "DB_POOL_MAX": "8",  # eight service processes share the server's 100 connections
    "LEDGER_HOLD_SWEEP_SECONDS": "0.2",
    "LEDGER_EXPIRY_SWEEP_SECONDS": "0.3",
    "RULES_SETTLE_SECONDS": "0.2",
    "RULES_VELOCITY_PER_MINUTE": "40",
    "RULES_REVIEW_PER_MINUTE": "30",
    "RULES_ACCOUNTS_PER_IP": "100000",
    "MALL_RECOVERY_SECONDS": "0.2",
    "MALL_RECOVERY_AFTER_SECONDS": "1",
    "OUTBOX_RELAY_SECONDS": "0.1",
    "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOKS_POLL_SECONDS": "0.1",
}
SERVICES = {
    "ledger": "loyalty.ledger.v1.LedgerService",
    "rules": "loyalty.rules.v1.RulesService",
    "mall": "loyalty.mall.v1.MallService",
    "webhooks": "loyalty.webhooks.v1.WebhooksService",
}


@dataclass
class Cluster:
    suite: Suite
    database_url: str
    receiver: Receiver
    secret: str  # of the subscription to every event
    ledger: ledger_pb2_grpc.LedgerServiceAsyncStub  # each balancing over both replicas
    rules: rules_pb2_grpc.RulesServiceAsyncStub
    mall: mall_pb2_grpc.MallServiceAsyncStub
    channels: dict[str, grpc.aio.Channel]

    async def restart(self, name: str, replica: int) -> None:
        """Start a killed replica again, and wait until the callers' channel is connected
        (after every replica was down, it may still be backing off)."""
        await self.suite.restart(name, replica)
        await asyncio.wait_for(self.channels[name].channel_ready(), timeout=10)


@pytest.fixture(scope="module")
async def cluster(server_url: str) -> AsyncIterator[Cluster]:
    async with (
        fresh_database(server_url, "points_replicas") as database_url,
        receiving() as receiver,
        running_suite(database_url, ENV, replicas=2, metrics=True) as suite,
    ):
        channels = {
            name: open_channel(peer_address(name, suite.env), service)
            for name, service in SERVICES.items()
        }
        try:
            rules = rules_pb2_grpc.RulesServiceStub(channels["rules"])
            await define_program(rules)
            await campaign_cases.define_online_rule(rules)
            webhooks = webhooks_pb2_grpc.WebhooksServiceStub(channels["webhooks"])
            created = await webhooks.CreateSubscription(
                wpb.CreateSubscriptionRequest(
                    subscription=wpb.Subscription(url=receiver.url, event_types=["*"]),
                    request_id=rid(),
                )
            )
            yield Cluster(
                suite,
                database_url,
                receiver,
                created.secret,
                ledger_pb2_grpc.LedgerServiceStub(channels["ledger"]),
                rules,
                mall_pb2_grpc.MallServiceStub(channels["mall"]),
                channels,
            )
        finally:
            await asyncio.gather(*(channel.close() for channel in channels.values()))


def user() -> str:
    return f"r-{uuid.uuid4().hex[:12]}"


async def test_the_concurrency_cases_hold_exactly_over_two_replicas(cluster: Cluster) -> None:
    ledger, rules, mall, db = cluster.ledger, cluster.rules, cluster.mall, cluster.database_url
    # The ledger: debits never overdraw, replays apply once, holds never over-reserve.
    await ledger_cases.test_100_concurrent_debits_of_10_against_500(ledger, user())
    await ledger_cases.test_50_concurrent_replays_apply_once(ledger, user())
    await ledger_cases.test_concurrent_holds_never_over_reserve(ledger, user())
    # Rules: a daily cap, a cap group and a campaign budget, each hit from both replicas.
    await award_cases.test_caps_hold_exactly_under_concurrency(rules, ledger, user())
    await award_cases.test_replayed_event_credits_once(rules, ledger, user())
    grouped = user()
    replies = await asyncio.gather(
        *(
            rules.RecordEvent(event(grouped, kind))
            for kind in (rpb.EVENT_TYPE_LIKE, rpb.EVENT_TYPE_SHARE)
            for _ in range(10)
        )
    )
    assert sum(r.total_points for r in replies) == 8  # the "activity" group's daily cap
    assert (await balance(ledger, grouped)).available == 8
    await campaign_cases.test_budget_caps_campaign_points_exactly_under_concurrency(
        rules, ledger, db
    )
    # The mall: stock, per-user limits, points for five of ten, prize stock of a lottery.
    await mall_cases.test_no_oversell_under_concurrency(mall, ledger)
    await mall_cases.test_per_user_limit(mall, ledger, user())
    await mall_cases.test_points_for_five_of_ten_concurrent_redemptions(mall, ledger, user())
    await mall_cases.test_200_concurrent_redemptions_of_10_in_stock(mall, ledger)
    await lottery_cases.test_draws_are_charged_awarded_limited_and_verifiable(mall, ledger, db)
    await audit_clean(ledger)
    # Both replicas of each service served those calls.
    for name, method in (
        ("ledger", "LedgerService/Debit"),
        ("rules", "RulesService/RecordEvent"),
        ("mall", "MallService/Redeem"),
    ):
        for replica in (0, 1):
            assert await calls(cluster.suite, name, replica, method) > 10, (name, replica)


async def test_experiment_assignment_is_exact_over_two_replicas(cluster: Cluster) -> None:
    """Members' events spread over both rules replicas at once: each member is assigned once,
    to the arm the documented hash gives, and every answer and award agrees."""
    rules = cluster.rules
    draft = experiment_cases.experiment(f"rep-{uuid.uuid4().hex[:8]}", "like", 2)
    before = [await calls(cluster.suite, "rules", r, "RulesService/RecordEvent") for r in (0, 1)]
    async with experiment_cases.running(rules, draft) as started:
        members = [user() for _ in range(40)]
        replies = await asyncio.gather(
            *(rules.RecordEvent(event(m, rpb.EVENT_TYPE_LIKE)) for m in members for _ in range(4))
        )
        assigned = await rules.ListAssignments(
            rpb.ListAssignmentsRequest(experiment_id=draft.experiment_id, page_size=500)
        )
    expected = {m: arm_for(started, m) for m in members}
    assert {a.user_id: a.arm_id for a in assigned.assignments} == expected
    assert len(assigned.assignments) == len(members)
    for member, reply in zip([m for m in members for _ in range(4)], replies, strict=True):
        assert [a.arm_id for a in reply.assignments] == [expected[member]]
        for award in reply.awards:
            assert (award.experiment_id, award.arm_id) == (draft.experiment_id, expected[member])
    after = [await calls(cluster.suite, "rules", r, "RulesService/RecordEvent") for r in (0, 1)]
    assert all(a - b >= 20 for a, b in zip(after, before, strict=True)), (before, after)


async def calls(suite: Suite, name: str, replica: int, method: str) -> float:
    samples = await scrape_port(suite.metrics_ports[name][replica])
    return sum(
        p.value
        for p in samples.get("rpc_server_call_duration_seconds_count", [])
        if str(p.attributes.get("rpc_method", "")).endswith(method)
    )


async def test_one_request_id_sent_to_each_replica_applies_once(cluster: Cluster) -> None:
    member, request_id = user(), rid()
    request = lpb.CreditRequest(request_id=request_id, user_id=member, amount=7, source="t")
    replicas = cluster.suite.ports["ledger"]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in replicas]
    try:
        stubs = [ledger_pb2_grpc.LedgerServiceStub(c) for c in channels]
        answers = await asyncio.gather(*(s.Credit(request) for s in stubs for _ in range(10)))
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    assert len({a.transfer.transfer_id for a in answers}) == 1
    assert (await balance(cluster.ledger, member)).available == 7

    # Through the two gateways: one Idempotency-Key, one redemption.
    admin = bearer("ops", "admin")
    buyer = user()
    gateways = [cluster.suite.gateway_url(n) for n in (0, 1)]
    async with httpx.AsyncClient(timeout=10, event_hooks={"request": [operator_keys]}) as http:
        item = {"type": "VIRTUAL", "title": "Pin", "points_price": 4, "stock": 100, "enabled": True}
        stored = await http.put(f"{gateways[0]}/v1/admin/items/pin", json=item, headers=admin)
        assert stored.is_success, stored.text
        await credit(cluster.ledger, buyer, 10)
        headers = {**bearer(buyer), "Idempotency-Key": rid()}
        replies = await asyncio.gather(
            *(
                http.post(f"{url}/v1/me/redemptions", json={"item_id": "pin"}, headers=headers)
                for url in gateways
                for _ in range(5)
            )
        )
    assert all(r.is_success for r in replies), [r.text for r in replies]
    assert len({r.json()["redemption_id"] for r in replies}) == 1
    assert (await balance(cluster.ledger, buyer)).available == 6


async def test_group_commit_runs_in_both_ledgers_at_once(cluster: Cluster) -> None:
    members = [user() for _ in range(300)]
    await asyncio.gather(*(credit(cluster.ledger, m, 3) for m in members))
    balances = await asyncio.gather(*(balance(cluster.ledger, m) for m in members))
    assert [b.available for b in balances] == [3] * 300
    for replica in (0, 1):
        samples = await scrape_port(cluster.suite.metrics_ports["ledger"][replica])
        count = sum(p.value for p in samples.get("points_ledger_batch_size_count", []))
        total = sum(p.value for p in samples.get("points_ledger_batch_size_sum", []))
        assert total > count > 0, replica  # some transactions carried more than one request
    await audit_clean(cluster.ledger)


async def test_a_watcher_on_either_replica_hears_a_change_made_on_the_other(
    cluster: Cluster,
) -> None:
    member = user()
    ports = cluster.suite.ports["ledger"]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in ports]
    try:
        first, second = (ledger_pb2_grpc.LedgerServiceStub(c) for c in channels)
        for watching, writing, amount in ((first, second, 4), (second, first, 6)):
            stream = watching.WatchBalance(lpb.WatchBalanceRequest(user_id=member))
            start = await stream.read()
            assert isinstance(start, lpb.WatchBalanceResponse)
            await credit(writing, member, amount)
            # The change this stream must hear; a notice of the change before (made just as
            # the stream opened) may come first, with the balance the stream started from.
            expected = start.balance.available + amount
            async with asyncio.timeout(5):
                changed = await stream.read()
                while isinstance(changed, lpb.WatchBalanceResponse) and (
                    changed.balance.available == start.balance.available
                ):
                    changed = await stream.read()
            assert isinstance(changed, lpb.WatchBalanceResponse)
            assert changed.balance.available == expected
            stream.cancel()
    finally:
        await asyncio.gather(*(c.close() for c in channels))

    # The gateways' live streams: a watcher on gateway 1 hears a credit made through gateway 0.
    async with httpx.AsyncClient(timeout=10) as http:
        url = f"{cluster.suite.gateway_url(1)}/v1/me/wallet/stream"
        async with http.stream("GET", url, headers=bearer(member)) as sse:
            seen: list[int] = []
            async for line in sse.aiter_lines():
                if not line.startswith("data: "):
                    continue
                seen.append(json.loads(line[6:])["available"])
                if len(seen) == 1:
                    adjusted = await http.post(
                        f"{cluster.suite.gateway_url(0)}/v1/admin/members/{member}/adjustments",
                        json={"points": 5, "note": "replicas"},
                        headers={**bearer("ops", "admin"), "Idempotency-Key": rid()},
                    )
                    assert adjusted.is_success, adjusted.text
                else:
                    break
    assert seen == [10, 15]


async def leader_of(database_url: str, job: str, suite: Suite, within: float = 20) -> int:
    """The replica (index into the ledger's processes) holding `job`'s lock at this moment."""
    conn = await asyncpg.connect(database_url)
    try:
        key = await conn.fetchval("SELECT hashtextextended($1, 0)", f"points.job.{job}")
        high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
        pids = {p.pid: n for n, p in enumerate(suite.processes["ledger"])}
        for _ in range(int(within / 0.002)):
            holder = await conn.fetchval(
                """
                SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                WHERE l.locktype = 'advisory' AND l.granted
                  AND l.classid::bigint = $1 AND l.objid::bigint = $2
                """,
                high,
                low,
            )
            if holder is not None:
                return pids[int(holder.rsplit(" ", 1)[1])]
            await asyncio.sleep(0.002)
    finally:
        await conn.close()
    raise AssertionError(f"nobody took the {job} lock within {within} s")


async def wait_until(check: Any, within: float = 30) -> None:
    for _ in range(int(within / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    assert await check()


async def test_jobs_run_once_and_go_on_when_a_replica_dies(cluster: Cluster) -> None:
    suite, ledger, db = cluster.suite, cluster.ledger, cluster.database_url
    # Expiry: due lots on 400 members; the replica leading a pass is SIGKILLed in it.
    expiring = [user() for _ in range(400)]
    credited = asyncio.get_running_loop().time()
    await asyncio.gather(*(credit(ledger, m, 5, expires_in_seconds=6) for m in expiring))
    await asyncio.sleep(6.1 - (asyncio.get_running_loop().time() - credited))
    leader = await leader_of(db, "expiry", suite)
    await suite.kill("ledger", leader)
    # Every lot expires once: never twice, never skipped.
    await wait_until(
        lambda: _all(ledger, expiring, lambda b: (b.available, b.lifetime_expired) == (0, 5))
    )
    await cluster.restart("ledger", leader)

    # Holds past their deadline are released by whichever replica sweeps first, once.
    holders = [user() for _ in range(50)]
    await asyncio.gather(*(credit(ledger, m, 10) for m in holders))
    for m in holders:
        hold = lpb.HoldRequest(request_id=rid(), user_id=m, amount=10, reason_code="REDEEM")
        hold.deadline_time.CopyFrom(to_timestamp(in_seconds(1)))
        await ledger.Hold(hold)
    await wait_until(lambda: _all(ledger, holders, lambda b: b.available == 10 and b.held == 0))

    # Settlement: awards earned while both ledgers are down are credited by the surviving
    # rules replica, once.
    for n in (0, 1):
        await suite.kill("ledger", n)
    earners = [user() for _ in range(10)]
    earned = await asyncio.gather(
        *(cluster.rules.RecordEvent(event(m, rpb.EVENT_TYPE_CHECK_IN)) for m in earners)
    )
    assert [e.total_points for e in earned] == [5] * 10  # awarded now, credited later
    # Redemptions started in an outage stay PENDING; the surviving mall replica finishes them.
    buyers = [user() for _ in range(5)]
    for n in (0, 1):
        await cluster.restart("ledger", n)
    await asyncio.gather(*(credit(ledger, m, 10) for m in buyers))
    for n in (0, 1):
        await suite.kill("ledger", n)
    stored = await cluster.mall.UpsertItem(
        mpb.UpsertItemRequest(
            item=mpb.Item(
                item_id=f"mug-{rid()[:8]}",
                type=mpb.ITEM_TYPE_VIRTUAL,
                title="Mug",
                points_price=6,
                stock=100,
                enabled=True,
            )
        )
    )

    started = await asyncio.gather(
        *(cluster.mall.Redeem(mall_cases.redeem(m, stored.item.item_id)) for m in buyers)
    )
    assert {r.redemption.status for r in started} == {mpb.REDEMPTION_STATUS_PENDING}
    await suite.kill("rules", 0)
    await suite.kill("mall", 0)
    for n in (0, 1):
        await cluster.restart("ledger", n)
    await wait_until(lambda: _all(ledger, earners, lambda b: b.available == 5))
    await wait_until(lambda: _all(ledger, buyers, lambda b: b.available == 4 and b.held == 0))
    for m in buyers:
        listed = await cluster.mall.ListRedemptions(mpb.ListRedemptionsRequest(user_id=m))
        assert [r.status for r in listed.redemptions] == [mpb.REDEMPTION_STATUS_COMPLETED]
    await cluster.restart("rules", 0)
    await cluster.restart("mall", 0)
    await audit_clean(ledger)

    # Two webhooks replicas delivered every event of every outbox, each exactly once.
    written = await outbox_ids(db)
    hook = Webhook(cluster.secret)

    def received() -> set[str]:
        return {r.headers["webhook-id"] for r in cluster.receiver.requests}

    async def all_delivered() -> bool:
        return written <= received()

    with contextlib.suppress(AssertionError):
        await wait_until(all_delivered, within=60)
    missing = written - received()
    assert not missing, f"{len(missing)} of {len(written)} events never delivered"
    delivered = Counter(r.headers["webhook-id"] for r in cluster.receiver.requests)
    assert delivered.most_common(1)[0][1] == 1
    for request in cluster.receiver.requests[:50]:
        hook.verify(request.body, request.headers)


async def _all(ledger: Any, members: list[str], check: Any) -> bool:
    try:
        balances = await asyncio.gather(*(balance(ledger, m, days=3660) for m in members))
    except grpc.aio.AioRpcError as exc:  # a replica just restarted: not connected again yet
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return False
    return all(check(b) for b in balances)


async def outbox_ids(database_url: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            str(row["event_id"])
            for schema in ("ledger", "rules", "mall")
            for row in await conn.fetch(f"SELECT event_id FROM {schema}.outbox")
        }
    finally:
        await conn.close()
