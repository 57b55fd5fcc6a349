"""`points import balances`: opening balances from another system, written to the ledger's
database at COPY speed by the installed console script, and read back through a real ledger."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from loyalty.ledger.v1 import ledger_pb2_grpc
from services.ledger.server import SPEC as LEDGER
from tests.support.cli import POINTS, points
from tests.support.hosts import free_port, running
from tests.support.ledger_calls import Stub, audit_clean, balance

NEXT_YEAR = (datetime.now(UTC) + timedelta(days=365)).date()


@pytest.fixture
async def ledger_at(private_database: str) -> AsyncIterator[tuple[Stub, dict[str, str]]]:
    async with (
        running(LEDGER, private_database) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        env = {"LEDGER_ADDR": f"127.0.0.1:{host.port}", "DATABASE_URL": private_database}
        yield ledger_pb2_grpc.LedgerServiceStub(channel), env


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as file:
        csv.writer(file).writerows([["user_id", "points", "expires_at", "reference"], *rows])
    return path


async def test_rows_apply_once_and_bad_rows_are_reported(
    ledger_at: tuple[Stub, dict[str, str]], tmp_path: Path
) -> None:
    ledger, env = ledger_at
    source = write(
        tmp_path / "legacy.csv",
        [
            ["alice", "1200", NEXT_YEAR.isoformat(), "lot-1"],
            ["alice", "300", "", "lot-2"],  # the ledger's default expiry
            ["bob", "50", f"{NEXT_YEAR.isoformat()}T08:00:00+08:00", ""],
            ["carol", "-5", "", ""],  # not a positive amount
            ["", "10", "", ""],  # no member
            ["dave", "10", "2001-01-01", ""],  # expired already: the ledger refuses it
            ["alice", "999", NEXT_YEAR.isoformat(), "lot-1"],  # the same lot as line 2
            ["erin", "7", "next tuesday", ""],
        ],
    )
    code, out, err = await points("import", "balances", str(source), "--batch-size", "3", **env)
    assert code == 1, err  # rows were rejected
    summary = json.loads(out)
    assert (summary["applied"], summary["already_imported"], summary["rejected"]) == (3, 0, 5)
    with (tmp_path / "legacy.csv.rejects.csv").open() as file:
        rejects = {int(r["line"]): r["reason"] for r in csv.DictReader(file)}
    assert sorted(rejects) == [5, 6, 7, 8, 9]
    assert "points must be" in rejects[5] and "user_id is empty" in rejects[6]
    assert rejects[7].startswith("INVALID_ARGUMENT") and "IDEMPOTENCY_KEY_REUSED" in rejects[8]
    assert "ISO 8601" in rejects[9]
    alice, bob = await balance(ledger, "alice"), await balance(ledger, "bob")
    assert (alice.available, bob.available) == (1500, 50)
    for user in ("carol", "dave", "erin"):
        assert (await balance(ledger, user)).available == 0  # nothing partial for them
    code, out, _ = await points("export", "lots", "--format", "jsonl", **env)
    lots = {(lot["user_id"], lot["granted"]): lot for lot in map(json.loads, out.splitlines())}
    # A date ends at the end of that day (UTC by default); a time keeps its offset.
    end_of_day = datetime.combine(NEXT_YEAR + timedelta(days=1), datetime.min.time(), UTC)
    assert datetime.fromisoformat(lots[("alice", 1200)]["expires_at"]) == end_of_day
    bob_expiry = datetime.fromisoformat(lots[("bob", 50)]["expires_at"])
    assert bob_expiry == datetime.combine(NEXT_YEAR, datetime.min.time(), UTC) + timedelta(hours=0)
    assert not (tmp_path / "legacy.csv.progress.json").exists()  # finished

    # Again: nothing applies twice, the same rows are rejected for the same reasons.
    code, out, _ = await points("import", "balances", str(source), **env)
    summary = json.loads(out)
    assert (summary["applied"], summary["already_imported"], summary["rejected"]) == (0, 3, 5)
    assert (await balance(ledger, "alice")).available == 1500

    # The report, corrected, imports as it is (its line and reason columns are ignored).
    report = tmp_path / "legacy.csv.rejects.csv"
    fixed = report.read_text().replace(",-5,", ",5,").replace("next tuesday", NEXT_YEAR.isoformat())
    report.write_text(fixed)
    code, out, _ = await points("import", "balances", str(report), "--import-id", "legacy", **env)
    summary = json.loads(out)
    assert (summary["applied"], summary["rejected"]) == (2, 3)
    assert (await balance(ledger, "carol")).available == 5
    assert (await balance(ledger, "erin")).available == 7
    await audit_clean(ledger)


async def test_a_row_is_its_member_and_reference_and_odd_bytes_fail_only_their_row(
    ledger_at: tuple[Stub, dict[str, str]], tmp_path: Path
) -> None:
    """Run again under another time zone, a dated row's expiry moves: the row is refused,
    never applied twice. A superscript or Arabic-Indic digit, or bytes that are not UTF-8,
    reject their row and import the rest."""
    ledger, env = ledger_at
    source = write(
        tmp_path / "zones.csv",
        [
            ["zed", "100", NEXT_YEAR.isoformat(), "z-1"],
            ["zed", "²", "", "z-2"],
            ["zed", "١٢", "", "z-3"],
            ["zed", "7", "", "z-4"],
        ],
    )
    with source.open("ab") as file:
        file.write(b"zed,\xff\xfe9,,z-5\n")
    code, out, err = await points("import", "balances", str(source), **env)
    assert code == 1, err
    summary = json.loads(out)
    assert (summary["applied"], summary["rejected"]) == (2, 3), out
    with (tmp_path / "zones.csv.rejects.csv").open(errors="surrogateescape") as file:
        rejects = {int(r["line"]): r["reason"] for r in csv.DictReader(file)}
    assert sorted(rejects) == [3, 4, 6]
    assert "points must be" in rejects[3] and "points must be" in rejects[4]
    assert "not valid UTF-8" in rejects[6]
    assert b"\xff\xfe9" in (tmp_path / "zones.csv.rejects.csv").read_bytes()  # copied as it was

    code, out, _ = await points(
        "import", "balances", str(source), "--timezone", "Asia/Shanghai", **env
    )
    summary = json.loads(out)
    assert (summary["applied"], summary["already_imported"]) == (0, 1), out
    with (tmp_path / "zones.csv.rejects.csv").open(errors="surrogateescape") as file:
        again = {int(r["line"]): r["reason"] for r in csv.DictReader(file)}
    assert "IDEMPOTENCY_KEY_REUSED" in again[2]  # its expiry moved: refused, not applied
    assert (await balance(ledger, "zed")).available == 107
    await audit_clean(ledger)


async def test_a_killed_import_resumes_and_applies_each_row_once(
    ledger_at: tuple[Stub, dict[str, str]], tmp_path: Path
) -> None:
    ledger, env = ledger_at
    members = 60
    rows = [[f"m-{n % members}", str(n + 1), "", f"r-{n}"] for n in range(3000)]
    source = write(tmp_path / "big.csv", rows)
    expected = {f"m-{m}": sum(n + 1 for n in range(3000) if n % members == m) for m in range(3)}
    args = ["import", "balances", str(source), "--batch-size", "50", "--parallel", "2"]
    process = await asyncio.create_subprocess_exec(
        POINTS, *args, env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    checkpoint = tmp_path / "big.csv.progress.json"
    for _ in range(300):  # kill it once it has confirmed some batches, mid-file
        if checkpoint.exists() and json.loads(checkpoint.read_text())["next_line"] > 500:
            break
        await asyncio.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    await process.wait()
    resumed_at = json.loads(checkpoint.read_text())["next_line"]
    assert 500 < resumed_at < 3002, "the run finished before it could be killed"
    code, out, err = await points(*args, **env)
    assert code == 0, err
    summary = json.loads(out)
    # The summary covers the whole import. Rows the checkpoint confirmed were not sent again:
    # only the batches in flight at the kill (2 of 50 rows) can have been applied already.
    assert summary["applied"] + summary["already_imported"] == 3000
    assert summary["already_imported"] <= 100
    for user, total in expected.items():
        assert (await balance(ledger, user)).available == total
    await audit_clean(ledger)


async def test_a_database_outage_stops_the_run_cleanly(tmp_path: Path) -> None:
    source = write(tmp_path / "down.csv", [["zed", "5", "", ""]])
    env = {"DATABASE_URL": f"postgresql://points@127.0.0.1:{free_port()}/points"}  # nobody
    code, _, err = await points("import", "balances", str(source), **env)
    assert code == 1 and "run the same command again to resume" in err
    code, _, err = await points("import", "balances", str(tmp_path / "nope.csv"), **env)
    assert code == 2
    (tmp_path / "bad.csv").write_text("member,amount\nx,1\n")
    code, _, err = await points("import", "balances", str(tmp_path / "bad.csv"), **env)
    assert code == 2 and "header" in err
