"""`points`: the operator's command line.

    points migrate status            what each service's schema has applied, and what is pending
    points migrate up                apply what is pending (a deploy step of its own)
    points expire [--as-of TIME]     expire due lots now (the ledger also does it on a schedule)
    points audit                     the ledger's invariants; exits 1 when one is broken
    points stats [--from --to]       liability and the period's flows
    points export transfers|members|lots [--from --to] [--format csv|jsonl] [--output FILE]
    points import balances FILE.csv [--import-id ID] [--source migration]
    points experiments export ID [--format csv|jsonl] [--output FILE]
    points audit-log export [--format csv|jsonl] [--output FILE]   the operators' audit log
    points audit-log verify          its hash chain; exits 1 naming the entries that break it
    points token USER [--scope admin]

Database commands read DATABASE_URL; ledger commands call the ledger at LEDGER_ADDR.
"""

from __future__ import annotations

import asyncio
import csv
import importlib
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import click
import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from gateway import token as gateway_token
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.rules.v1 import rules_pb2, rules_pb2_grpc
from services.balance_import import (
    BalanceImport,
    Checkpoint,
    FileRejected,
    Options,
    check_file_header,
    count_rows,
)
from services.common import catalog
from services.common.db import create_pool
from services.common.migrations import load_migrations, migrate, status
from services.common.server import ServiceSpec
from services.common.settings import Env, SettingsError, peer_address
from services.common.timestamps import to_timestamp
from services.ledger import queries
from services.ledger.config import ExpiryPolicy, LedgerConfig
from services.webhooks import audit_repository
from services.webhooks.audit import Verifier

# Every service's wiring, in the catalog's order: the order a deploy migrates.
SPECS: tuple[ServiceSpec, ...] = tuple(
    importlib.import_module(s.module).SPEC for s in catalog.SERVICES
)
T = TypeVar("T")


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(work())


def database_url() -> str:
    url = Env().optional("DATABASE_URL")
    if not url:
        raise click.UsageError("set DATABASE_URL to the suite's PostgreSQL")
    return url


DEADLINE = 600.0  # seconds: an expiry or an audit of a large ledger takes minutes


STUBS: dict[str, Any] = {
    "ledger": ledger_pb2_grpc.LedgerServiceStub,
    "rules": rules_pb2_grpc.RulesServiceStub,
}


async def peer_call(service: str, method: str, request: Message) -> Any:
    """One call to a service (<SERVICE>_ADDR); a refusal or an outage is a clean exit."""
    async with grpc.aio.insecure_channel(peer_address(service)) as channel:
        stub = STUBS[service](channel)
        try:
            return await getattr(stub, method)(request, timeout=DEADLINE)
        except grpc.aio.AioRpcError as exc:
            raise click.ClickException(f"{service}: {exc.code().name}: {exc.details()}") from None


async def ledger_call(method: str, request: Message) -> Any:
    return await peer_call("ledger", method, request)


def echo_json(message: Message) -> None:
    click.echo(json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2))


@click.group(
    help="Operate a Points suite: migrations, expiry, audit, reports, exports, tokens.\n\n"
    "Database commands read DATABASE_URL; ledger commands call the ledger at LEDGER_ADDR "
    "(default 127.0.0.1:50051)."
)
def main() -> None:
    pass


@main.group("migrate", help="Schema migrations, as a deploy step of their own.")
def migrate_group() -> None:
    pass


@migrate_group.command("status", help="What each schema has applied, and what is pending.")
def migrate_status() -> None:
    async def work() -> int:
        conn = await asyncpg.connect(database_url())
        pending = 0
        try:
            for spec in SPECS:
                assert spec.migrations_dir is not None
                for state in await status(conn, spec.name, load_migrations(spec.migrations_dir)):
                    m = state.migration
                    if state.applied_at is None:
                        pending += 1
                        when = "pending"
                    else:
                        when = f"applied {state.applied_at:%Y-%m-%d %H:%M}"
                        when += "  CHANGED since applied" if state.changed else ""
                    click.echo(f"{spec.name:<8} {m.version:04d}_{m.name:<32} {when}")
        finally:
            await conn.close()
        return pending

    pending = run(work)
    click.echo(f"{pending} pending" if pending else "up to date")


@migrate_group.command("up", help="Apply every pending migration (ledger, rules, mall, webhooks).")
def migrate_up() -> None:
    async def work() -> None:
        conn = await asyncpg.connect(database_url())
        try:
            for spec in SPECS:
                assert spec.migrations_dir is not None
                done = await migrate(conn, spec.name, load_migrations(spec.migrations_dir))
                applied = ", ".join(f"{v:04d}" for v in done) if done else "nothing to apply"
                click.echo(f"{spec.name:<8} {applied}")
        finally:
            await conn.close()

    run(work)


@main.command(help="Expire every lot due by --as-of (default: now); safe to re-run.")
@click.option("--as-of", type=click.DateTime(), help="expire lots due by this time (UTC)")
@click.option("--request-id", default=None, help="idempotency key (default: a new one)")
def expire(as_of: datetime | None, request_id: str | None) -> None:
    request = pb.ExpirePointsRequest(request_id=request_id or f"cli:{uuid.uuid4()}")
    if as_of is not None:
        request.as_of_time.CopyFrom(to_timestamp(as_of))
    echo_json(run(lambda: ledger_call("ExpirePoints", request)))


@main.command(help="Check the ledger's invariants; exits 1 when one is broken.")
def audit() -> None:
    report: pb.AuditResponse = run(lambda: ledger_call("Audit", pb.AuditRequest()))
    echo_json(report)
    if not report.ok:
        sys.exit(1)


@main.command(help="Outstanding liability, and the flows of a period.")
@click.option("--from", "start", type=click.DateTime(), help="period start (UTC)")
@click.option("--to", "end", type=click.DateTime(), help="period end, exclusive (UTC)")
def stats(start: datetime | None, end: datetime | None) -> None:
    request = pb.GetStatsRequest()
    if start is not None:
        request.time_range.start_time.CopyFrom(to_timestamp(start))
    if end is not None:
        request.time_range.end_time.CopyFrom(to_timestamp(end))
    echo_json(run(lambda: ledger_call("GetStats", request)))


@main.command(
    help="Stream a ledger table for finance, in constant memory: CSV (RFC 4180, with a header; "
    "times in UTC as '2026-11-26 08:00:00.123+00') or JSON lines (times in ISO 8601)."
)
@click.argument("table", type=click.Choice(sorted(queries.EXPORTS)))
@click.option("--from", "start", type=click.DateTime(), help="rows created from (UTC)")
@click.option("--to", "end", type=click.DateTime(), help="rows created before (UTC)")
@click.option("--format", "form", type=click.Choice(["csv", "jsonl"]), default="csv")
@click.option("--output", type=click.File("w"), default="-", help="file (default: stdout)")
def export(
    table: str, start: datetime | None, end: datetime | None, form: str, output: IO[str]
) -> None:
    async def work() -> int:
        conn = await asyncpg.connect(
            database_url(), server_settings={"search_path": "ledger", "TimeZone": "UTC"}
        )
        count = 0
        try:
            async with conn.transaction(readonly=True, isolation="repeatable_read"):
                if form == "csv":  # formatted by PostgreSQL, streamed as it comes

                    async def write(chunk: bytes) -> None:
                        output.write(chunk.decode())

                    return await queries.copy_csv(conn, table, aware(start), aware(end), write)
                async for row in queries.export_rows(conn, table, aware(start), aware(end)):
                    record = {k: plain(v) for k, v in row.items()}
                    output.write(json.dumps(record, ensure_ascii=False) + "\n")
                    count += 1
        finally:
            await conn.close()
        return count

    count = run(work)
    click.echo(f"{count} {table} rows", err=True)


@main.group("audit-log", help="The operators' audit log (the webhooks service's schema).")
def audit_log_group() -> None:
    pass


AUDIT_PAGE = 1000


async def _audit_entries(write: Callable[[dict[str, Any]], None]) -> Verifier:
    """Every entry of the audit log in order, to `write`, checked against the hash chain."""
    conn = await asyncpg.connect(
        database_url(), server_settings={"search_path": "webhooks", "TimeZone": "UTC"}
    )
    verifier = Verifier()
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            after = 0
            while rows := await audit_repository.every(conn, after, AUDIT_PAGE):
                for row in rows:
                    entry = dict(row)
                    verifier.feed(entry)
                    write(entry)
                after = rows[-1]["seq"]
    finally:
        await conn.close()
    return verifier


@audit_log_group.command(
    "export",
    help="Every entry, oldest first, as CSV (with a header) or JSON lines; the hash chain is "
    "checked on the way and a break is reported (exit 1).",
)
@click.option("--format", "form", type=click.Choice(["csv", "jsonl"]), default="csv")
@click.option("--output", type=click.File("w"), default="-", help="file (default: stdout)")
def audit_log_export(form: str, output: IO[str]) -> None:
    writer = csv.DictWriter(
        output, fieldnames=[c.strip() for c in audit_repository.COLUMNS.split(",")]
    )
    if form == "csv":
        writer.writeheader()

    def write(entry: dict[str, Any]) -> None:
        record = {k: plain(v) for k, v in entry.items()}
        if form == "csv":
            writer.writerow({**record, "roles": " ".join(entry["roles"])})
        else:
            output.write(json.dumps(record, ensure_ascii=False) + "\n")

    _report(run(lambda: _audit_entries(write)))


@audit_log_group.command(
    "verify",
    help="Check the whole log's hash chain: exit 0 when it holds, 1 naming what breaks it.",
)
def audit_log_verify() -> None:
    _report(run(lambda: _audit_entries(lambda _: None)))


def _report(verifier: Verifier) -> None:
    for problem in verifier.problems:
        click.echo(f"audit log: {problem}", err=True)
    click.echo(
        f"{verifier.seq} entries, chain {'broken' if verifier.problems else 'intact'}", err=True
    )
    if verifier.problems:
        sys.exit(1)


@main.group("experiments", help="Experiments on rules and campaigns (the rules service).")
def experiments_group() -> None:
    pass


@experiments_group.command(
    "export",
    help="Every member assigned to EXPERIMENT_ID, by member id, with their arm, its role and "
    "when they were assigned: CSV (with a header) or JSON lines, for a data team. Calls the "
    "rules service at RULES_ADDR.",
)
@click.argument("experiment_id")
@click.option("--format", "form", type=click.Choice(["csv", "jsonl"]), default="csv")
@click.option("--output", type=click.File("w"), default="-", help="file (default: stdout)")
def experiments_export(experiment_id: str, form: str, output: IO[str]) -> None:
    columns = ["experiment_id", "user_id", "arm_id", "role", "assigned_at"]
    writer = csv.DictWriter(output, fieldnames=columns)
    if form == "csv":
        writer.writeheader()

    async def work() -> int:
        found = await peer_call("rules", "ListExperiments", rules_pb2.ListExperimentsRequest())
        experiment = next((e for e in found.experiments if e.experiment_id == experiment_id), None)
        if experiment is None:
            raise click.ClickException(f"rules: no experiment {experiment_id!r}")
        roles = {
            a.arm_id: rules_pb2.ArmRole.Name(a.role).removeprefix("ARM_ROLE_")
            for a in experiment.arms
        }
        count, token = 0, ""
        while True:
            request = rules_pb2.ListAssignmentsRequest(
                experiment_id=experiment_id, page_size=500, page_token=token
            )
            page = await peer_call("rules", "ListAssignments", request)
            for a in page.assignments:
                row = {
                    "experiment_id": experiment_id,
                    "user_id": a.user_id,
                    "arm_id": a.arm_id,
                    "role": roles.get(a.arm_id, ""),
                    "assigned_at": a.assign_time.ToJsonString(),
                }
                if form == "csv":
                    writer.writerow(row)
                else:
                    output.write(json.dumps(row) + "\n")
            count += len(page.assignments)
            token = page.next_page_token
            if not token:
                return count

    click.echo(f"{run(work)} assignments", err=True)


@main.group("import", help="Load data from another system.")
def import_group() -> None:
    pass


@import_group.command(
    "balances",
    help="Opening balances (one lot per row) from FILE, a CSV with columns user_id, points "
    "and optionally expires_at (ISO 8601 date or time; a date ends at the end of that day) and "
    "reference, written to the ledger's database (DATABASE_URL) at COPY speed. Each row is "
    "idempotent: a re-run applies nothing twice, and a crashed run resumes from "
    "FILE.progress.json. Rejected rows go to FILE.rejects.csv with their reason. Rows without "
    "expires_at follow LEDGER_EXPIRY_POLICY, as the ledger does. Exits 1 when any row was "
    "rejected.",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--import-id", help="names this import in request ids (default: FILE's name)")
@click.option("--source", default="migration", show_default=True, help="issuance source")
@click.option("--timezone", "zone", default="UTC", show_default=True, help="for dates")
@click.option(
    "--batch-size",
    default=10_000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="rows per transaction",
)
@click.option("--parallel", default=2, show_default=True, type=click.IntRange(1, 16))
def import_balances(
    file: Path, import_id: str | None, source: str, zone: str, batch_size: int, parallel: int
) -> None:
    identity = import_id or re.sub(r"[^A-Za-z0-9._-]", "-", file.stem)[:64]
    try:
        timezone = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {zone!r}", param_hint="--timezone") from None
    try:
        policy = LedgerConfig.from_env().expiry
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    options = Options(identity, source, batch_size, parallel, timezone)
    url = database_url()
    started = time.monotonic()
    try:
        check_file_header(file)
        state = run(lambda: _import(file, url, policy, options, started))
    except FileRejected as exc:
        raise click.UsageError(str(exc)) from None
    except asyncpg.UndefinedFunctionError:
        raise click.ClickException(
            "the ledger's schema is older than this command: run `points migrate up` first"
        ) from None
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(
            f"database: {exc}; run the same command again to resume"
        ) from None
    total = state.applied + state.already + state.rejected
    click.echo(
        json.dumps(
            {
                "import_id": identity,
                "applied": state.applied,
                "already_imported": state.already,
                "rejected": state.rejected,
                "rejects_report": str(_rejects(file)),
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    _checkpoint(file).unlink(missing_ok=True)  # complete: a later run starts over (and replays)
    if total and state.rejected:
        raise SystemExit(1)


def _rejects(file: Path) -> Path:
    return file.with_name(file.name + ".rejects.csv")


def _checkpoint(file: Path) -> Path:
    return file.with_name(file.name + ".progress.json")


async def _import(
    file: Path, url: str, policy: ExpiryPolicy, options: Options, started: float
) -> Checkpoint:
    """The import with a progress bar on stderr (rows and rows per second)."""
    checkpoint = _checkpoint(file)
    done = Checkpoint.load(checkpoint, options.import_id)
    rows = count_rows(file) - (done.next_line - 2)
    seen = [0]

    def rate(_: object) -> str:
        return f"{seen[0] / max(time.monotonic() - started, 1e-9):,.0f} rows/s"

    pool = await create_pool(
        url,
        schema="ledger",
        application_name="points-import",
        min_size=1,
        max_size=options.parallel,
        wait_seconds=0,
    )
    try:
        job = BalanceImport(pool, policy, file, options, _rejects(file), checkpoint)
        with click.progressbar(
            length=max(rows, 0),
            label=f"importing {file.name}",
            show_eta=True,
            show_pos=True,
            file=sys.stderr,
            item_show_func=rate,
        ) as bar:

            def advance(count: int) -> None:
                seen[0] += count
                bar.update(count)

            return await job.run(advance)
    finally:
        await pool.close()


def aware(moment: datetime | None) -> datetime | None:
    """Command-line times without a zone are UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    help="Mint a development token: points token USER [--scope admin] [--ttl SECONDS].",
)
@click.pass_context
def token(context: click.Context) -> None:
    sys.exit(gateway_token.main(context.args))


if __name__ == "__main__":  # `python -m services.cli` where the console script is not installed
    main()
