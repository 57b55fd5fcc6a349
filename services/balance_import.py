"""Opening balances from another loyalty system, loaded through the ledger's batch API.

The file is CSV with a header: `user_id` and `points` (required), `expires_at` and `reference`
(optional). Each row becomes one credit (one lot) from the issuance source `--source`
(default "migration"):
- idempotent per row: a row is named by the import id, the member and the reference, and its
  credit's request id derives from that name alone, so running the file again applies nothing
  twice, whatever else changed. A re-run that disagrees on a row (its points or its expiry, say
  under another --timezone) is refused for that row by the ledger (the key was used for another
  request), never applied twice. A second row with the same member and reference is refused
  the same way instead of silently merged: a member's several lots need a reference each;
- resumable: a checkpoint beside the file records how far the ledger has confirmed; after a
  crash the run resumes there (anything sent but unconfirmed is sent again and replays);
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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import IO, Any

from loyalty.ledger.v1 import ledger_pb2 as pb
from services.common.ledger_client import LedgerClient
from services.common.timestamps import to_timestamp
from services.common.validation import MAX_USER_ID, ascii_number, identifier_problem

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

    def operation(self, import_id: str, source: str) -> pb.BatchOperation:
        credit = pb.CreditRequest(
            request_id=self.request_id(import_id),
            user_id=self.user_id,
            amount=self.points,
            source=source,
            reason_code="OPENING_BALANCE",
            metadata={"import": import_id, "line": str(self.line), "reference": self.reference},
        )
        if self.expires_at is not None:
            credit.expire_time.CopyFrom(to_timestamp(self.expires_at))
        return pb.BatchOperation(credit=credit)


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


def read_batches(file: IO[str], start_line: int, size: int, zone: tzinfo) -> Iterator[Batch]:
    """Batches of valid rows from `start_line` on, each with the rows rejected on the way."""
    reader = csv.DictReader(file)
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS and c not in IGNORED]
    if missing or unknown:
        raise FileRejected(
            f"the header must name {', '.join(REQUIRED)} (and may name expires_at, "
            f"reference); missing {missing or 'nothing'}, unknown {unknown or 'nothing'}"
        )
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
    batch_size: int = 1000
    parallel: int = 4  # batches in flight at once
    zone: tzinfo = UTC


class BalanceImport:
    def __init__(
        self, ledger: LedgerClient, path: Path, options: Options, rejects: Path, checkpoint: Path
    ) -> None:
        self.ledger = ledger
        self.path = path
        self.options = options
        self.rejects_path = rejects
        self.checkpoint_path = checkpoint
        self.started = datetime.now(UTC)

    async def run(self, progress: Callable[[int], None] = lambda rows: None) -> Checkpoint:
        """Import from the checkpoint on; `progress(rows)` after each confirmed batch."""
        state = Checkpoint.load(self.checkpoint_path, self.options.import_id)
        with (
            # Bytes that are not UTF-8 fail their row, not the file (see parse_row).
            self.path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as file,
            self._open_rejects(state) as rejects,
        ):
            report = csv.writer(rejects)
            if state.rejects_bytes == 0:
                report.writerow(REJECT_COLUMNS)
            in_flight: deque[tuple[Batch, asyncio.Task[pb.PostBatchResponse]]] = deque()
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
                    in_flight.append((batch, asyncio.create_task(self._post(batch))))
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

    async def _post(self, batch: Batch) -> pb.PostBatchResponse:
        if not batch.rows:
            return pb.PostBatchResponse()
        operations = [r.operation(self.options.import_id, self.options.source) for r in batch.rows]
        return await self.ledger.post_batch(pb.PostBatchRequest(operations=operations))

    async def _confirm(
        self,
        batch: Batch,
        task: asyncio.Task[pb.PostBatchResponse],
        state: Checkpoint,
        report: Any,
        rejects: IO[str],
        progress: Callable[[int], None],
    ) -> None:
        reply = await task  # raises when the ledger cannot be reached: rerun to resume
        refused = list(batch.rejects)
        for row, result in zip(batch.rows, reply.results, strict=True):
            if result.HasField("error"):
                refused.append(
                    (row.line, row.raw, f"{result.error.reason}: {result.error.message}")
                )
            elif result.credit.transfer.create_time.ToDatetime(UTC) < self.started:
                state.already += 1  # imported by an earlier run: replayed, not applied again
            else:
                state.applied += 1
        for line, record, reason in sorted(refused, key=lambda item: item[0]):
            report.writerow([line, *(record.get(c, "") for c in COLUMNS), reason])
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
