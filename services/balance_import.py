"""Opening balances from another loyalty system, loaded straight into the ledger's database at
COPY speed: each chunk of the file is one transaction that streams its rows into a temporary
table and applies them set-based (services/ledger/import_repository.py and the migration
0014_import_balances.sql), with the ledger's own bookkeeping: a request record, a transfer
and a lot per row, the member's totals, a `points.credited` event, a note to balance watchers.

The file is CSV with a header: `user_id` and `points` (required), `expires_at` and `reference`
(optional). Each row becomes one credit (one lot) from the issuance source `--source`
(default "migration"):
- idempotent per row: a row is named by the import id, the member and the reference, and its
  credit's request id derives from that name alone, so running the file again applies nothing
  twice, whatever else changed. A re-run that disagrees on a row (its points or its expiry, say
  under another --timezone) is refused for that row by the ledger (the key was used for another
  request), never applied twice. A second row with the same member and reference is refused
  the same way instead of silently merged: a member's several lots need a reference each;
- resumable: a checkpoint beside the file records how far the database has committed; after a
  crash the run resumes there (a chunk that was in flight is sent again: its committed rows are
  then "already imported");
- a rejected row (malformed, not UTF-8, or refused by the ledger) changes nothing and is written
  to the rejects report with its line and reason (bytes that are not UTF-8 are copied there as
  they were). Numbers are ASCII digits only.

`expires_at` is an ISO 8601 date or time; a date means the end of that day in `--timezone`.
Empty uses the ledger's default expiry policy. The rejects report, corrected, can be imported
as it is (its `line` and `reason` columns are ignored).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import IO, Any

import asyncpg

from services.common.timestamps import rfc3339
from services.common.validation import MAX_USER_ID, ascii_number, identifier_problem
from services.ledger import import_repository as import_repo
from services.ledger.config import ExpiryPolicy

COLUMNS = ("user_id", "points", "expires_at", "reference")
REQUIRED = ("user_id", "points")
REJECT_COLUMNS = ("line", *COLUMNS, "reason")
# The rejects report's own columns are ignored, so a corrected report can be imported as is.
IGNORED = ("line", "reason")
MAX_POINTS = 10**12


class FileRejected(ValueError):
    """The file as a whole cannot be imported (its header, or a checkpoint of another file)."""


class RowError(ValueError):
    """One row cannot be imported; the message is the reason written to the report."""


@dataclass(frozen=True)
class Row:
    line: int  # in the file, header = 1
    user_id: str
    points: int
    expires_at: datetime | None
    reference: str
    raw: dict[str, str]

    def request_id(self, import_id: str) -> str:
        key = "\0".join((self.user_id, self.reference)).encode()
        return f"import:{import_id}:{hashlib.sha256(key).hexdigest()[:32]}"

    def staged(self, import_id: str) -> import_repo.StagedRow:
        """The row as the database stages it. Its payload hash is what a re-run must agree on:
        the points and the expiry as the file gave it (empty: the policy's, whenever run)."""
        expiry = rfc3339(self.expires_at) if self.expires_at else ""
        payload = hashlib.sha256(f"{self.points}|{expiry}".encode()).digest()
        return (
            self.line,
            self.user_id,
            self.points,
            self.expires_at,
            self.reference,
            self.request_id(import_id),
            payload,
        )


def parse_row(line: int, record: dict[str, str], zone: tzinfo) -> Row:
    if any(_undecodable(value) for value in record.values() if isinstance(value, str)):
        raise RowError("the line is not valid UTF-8")
    user_id = (record.get("user_id") or "").strip()
    if not user_id:
        raise RowError("user_id is empty")
    problem = identifier_problem(user_id, MAX_USER_ID)
    if problem is not None:
        raise RowError(f"user_id {problem}")
    text = (record.get("points") or "").strip()
    points = ascii_number(text, 13)
    if points is None or not 0 < points <= MAX_POINTS:
        raise RowError(f"points must be a whole number from 1 to {MAX_POINTS}, got {text!r}")
    return Row(
        line,
        user_id,
        points,
        parse_expiry((record.get("expires_at") or "").strip(), zone),
        (record.get("reference") or "").strip(),
        record,
    )


def _undecodable(text: str) -> bool:
    """Holds bytes that were not UTF-8 (read with errors="surrogateescape")."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def parse_expiry(text: str, zone: tzinfo) -> datetime | None:
    if not text:
        return None
    try:
        if len(text) == 10:  # a date: the end of that day
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(f"expires_at is not an ISO 8601 date or time: {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)


@dataclass
class Checkpoint:
    """How far the ledger confirmed, kept beside the file so a crashed run resumes."""

    import_id: str
    next_line: int = 2  # the first line not yet confirmed (the header is line 1)
    rejects_bytes: int = 0  # the report's size when that was recorded
    applied: int = 0
    already: int = 0
    rejected: int = 0

    @classmethod
    def load(cls, path: Path, import_id: str) -> Checkpoint:
        if not path.exists():
            return cls(import_id)
        saved = cls(**json.loads(path.read_text()))
        if saved.import_id != import_id:
            raise FileRejected(
                f"{path} belongs to import {saved.import_id!r}; pass --import-id "
                f"{saved.import_id} to resume it, or remove the file to start over"
            )
        return saved

    def save(self, path: Path) -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self)))
        os.replace(temporary, path)  # atomic: a crash leaves the old or the new checkpoint


@dataclass
class Batch:
    rows: list[Row]
    rejects: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    last_line: int = 0
    keys: set[str] = field(default_factory=set)  # request ids of its rows


def check_header(header: Sequence[str]) -> None:
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS and c not in IGNORED]
    if missing or unknown:
        raise FileRejected(
            f"the header must name {', '.join(REQUIRED)} (and may name expires_at, "
            f"reference); missing {missing or 'nothing'}, unknown {unknown or 'nothing'}"
        )


def check_file_header(path: Path) -> None:
    """Refuse a file whose header is wrong before anything connects."""
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as file:
        check_header(next(csv.reader(file), []))


def read_batches(file: IO[str], start_line: int, size: int, zone: tzinfo) -> Iterator[Batch]:
    """Batches of valid rows from `start_line` on, each with the rows rejected on the way."""
    reader = csv.DictReader(file)
    check_header(reader.fieldnames or [])
    batch = Batch([])
    for record in reader:
        line = reader.line_num
        if line < start_line:
            continue
        try:
            batch.rows.append(parse_row(line, record, zone))
        except RowError as exc:
            batch.rejects.append((line, record, str(exc)))
        batch.last_line = line
        if len(batch.rows) >= size:
            yield batch
            batch = Batch([])
    if batch.rows or batch.rejects:
        yield batch


@dataclass(frozen=True)
class Options:
    import_id: str
    source: str = "migration"
    batch_size: int = 10_000  # rows per chunk (one transaction each)
    parallel: int = 2  # chunks in flight at once, each on its own connection
    zone: tzinfo = UTC


class BalanceImport:
    def __init__(
        self,
        pool: asyncpg.Pool,
        policy: ExpiryPolicy,
        path: Path,
        options: Options,
        rejects: Path,
        checkpoint: Path,
    ) -> None:
        self.pool = pool
        self.policy = policy  # the ledger's default expiry, for rows that give none
        self.path = path
        self.options = options
        self.rejects_path = rejects
        self.checkpoint_path = checkpoint

    async def run(self, progress: Callable[[int], None] = lambda rows: None) -> Checkpoint:
        """Import from the checkpoint on; `progress(rows)` after each committed chunk."""
        state = Checkpoint.load(self.checkpoint_path, self.options.import_id)
        with (
            # Bytes that are not UTF-8 fail their row, not the file (see parse_row).
            self.path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as file,
            self._open_rejects(state) as rejects,
        ):
            report = csv.writer(rejects)
            if state.rejects_bytes == 0:
                report.writerow(REJECT_COLUMNS)
            in_flight: deque[tuple[Batch, asyncio.Task[list[asyncpg.Record]]]] = deque()
            batches = read_batches(
                file, state.next_line, self.options.batch_size, self.options.zone
            )
            try:
                for batch in batches:
                    # A row repeating the key of a row in flight waits for it, so the file's
                    # first row wins and the repeat is the one refused, whatever the timing.
                    keys = {row.request_id(self.options.import_id) for row in batch.rows}
                    while in_flight and any(keys & sent.keys for sent, _ in in_flight):
                        await self._confirm(*in_flight.popleft(), state, report, rejects, progress)
                    batch.keys = keys
                    in_flight.append((batch, asyncio.create_task(self._apply(batch))))
                    if len(in_flight) >= self.options.parallel:
                        await self._confirm(*in_flight.popleft(), state, report, rejects, progress)
                while in_flight:
                    await self._confirm(*in_flight.popleft(), state, report, rejects, progress)
            finally:  # an outage: what is unconfirmed is sent again when the run resumes
                for _, task in in_flight:
                    task.cancel()
                await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)
        return state

    def _open_rejects(self, state: Checkpoint) -> IO[str]:
        """The report, cut back to what the checkpoint confirmed (a crashed batch is redone)."""
        if state.rejects_bytes == 0 or not self.rejects_path.exists():
            state.rejects_bytes = 0
            return self.rejects_path.open(
                "w", newline="", encoding="utf-8", errors="surrogateescape"
            )
        report = self.rejects_path.open(
            "r+", newline="", encoding="utf-8", errors="surrogateescape"
        )
        report.truncate(state.rejects_bytes)
        report.seek(state.rejects_bytes)
        return report

    async def _apply(self, batch: Batch) -> list[asyncpg.Record]:
        """One transaction: the chunk's rows not applied come back with their outcome."""
        if not batch.rows:
            return []
        staged = [row.staged(self.options.import_id) for row in batch.rows]
        async with self.pool.acquire() as conn, conn.transaction():
            default_expiry = self.policy.expires_at(await import_repo.database_now(conn))
            return await import_repo.apply_chunk(
                conn, self.options.import_id, self.options.source, default_expiry, staged
            )

    async def _confirm(
        self,
        batch: Batch,
        task: asyncio.Task[list[asyncpg.Record]],
        state: Checkpoint,
        report: Any,
        rejects: IO[str],
        progress: Callable[[int], None],
    ) -> None:
        not_applied = await task  # raises when the database cannot be reached: rerun to resume
        refused = list(batch.rejects)
        by_line = {row.line: row for row in batch.rows}
        already = 0
        for line, outcome, reason in not_applied:
            if outcome == "already":
                already += 1
            else:
                refused.append((line, by_line[line].raw, reason))
        for line, record, reason in sorted(refused, key=lambda item: item[0]):
            report.writerow([line, *(record.get(c, "") for c in COLUMNS), reason])
        state.already += already
        state.applied += len(batch.rows) - len(not_applied)
        state.rejected += len(refused)
        rejects.flush()
        state.rejects_bytes = rejects.tell()
        state.next_line = batch.last_line + 1
        state.save(self.checkpoint_path)
        progress(len(batch.rows) + len(batch.rejects))


def count_rows(path: Path) -> int:
    """Data rows in the file (for the progress bar; quoted newlines make it an estimate)."""
    with path.open("rb") as file:
        return max(
            0, sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b"")) - 1
        )
