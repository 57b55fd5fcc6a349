"""The operators' side of dead letters (list, retry, resolve), shared by rules and mall.

Each service passes the function that re-runs one letter's work; everything else (checks,
paging, the letter's states) is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from types import ModuleType
from typing import Any

import asyncpg

from loyalty.common.v1 import common_pb2
from services.common import dead_letters
from services.common.dead_letters import Letter
from services.common.errors import FailedPrecondition, FieldViolation, NotFound
from services.common.idempotency import RequestLog
from services.common.paging import decode_token, encode_token, invalid_token
from services.common.peers import PeerRefused
from services.common.timestamps import to_timestamp
from services.common.validation import ascii_number, check_text, check_user_id, raise_if

# Re-runs a letter's work; raises PeerRefused when refused again, PeerUnavailable to try later.
Retry = Callable[[Letter], Awaitable[None]]


def message(letter: Letter) -> common_pb2.DeadLetter:
    return common_pb2.DeadLetter(
        user_id=letter.user_id,
        letter_id=str(letter.letter_id),
        kind=letter.kind,
        subject=letter.subject,
        reason=letter.reason,
        message=letter.message,
        status=common_pb2.DeadLetterStatus.Value(f"DEAD_LETTER_STATUS_{letter.status}"),
        attempts=letter.attempts,
        note=letter.note,
        create_time=to_timestamp(letter.created_at),
        update_time=to_timestamp(letter.updated_at),
    )


def _letter_id(bad: list[FieldViolation], value: str) -> int:
    number = ascii_number(value)
    if number is None:
        bad.append(FieldViolation("letter_id", "must be an id returned by ListDeadLetters"))
        return 0
    return number


class DeadLetterDesk:
    def __init__(self, pool: asyncpg.Pool, retry: Retry) -> None:
        self.pool = pool
        self._retry = retry

    async def list(
        self, status: int, page_size: int, page_token: str
    ) -> tuple[list[common_pb2.DeadLetter], str]:
        bad: list[FieldViolation] = []
        if not 0 <= page_size <= 500:
            bad.append(FieldViolation("page_size", "must be between 0 and 500"))
        raise_if(bad)
        after = None
        if page_token:
            created, user_id, letter_id = decode_token(page_token, 3)
            try:
                after = (datetime.fromisoformat(created), user_id, int(letter_id))
            except ValueError:
                raise invalid_token() from None
        name = (
            common_pb2.DeadLetterStatus.Name(status).removeprefix("DEAD_LETTER_STATUS_")  # type: ignore[arg-type]
            if status
            else None
        )
        limit = page_size or 50
        async with self.pool.acquire() as conn:
            letters = await dead_letters.listing(conn, name, after, limit + 1)
        page = letters[:limit]
        token = ""
        if len(letters) > limit:
            last = page[-1]
            token = encode_token(last.created_at.isoformat(), last.user_id, str(last.letter_id))
        return [message(letter) for letter in page], token

    async def _open(self, user_id: str, letter_id: str, note: str | None = None) -> Letter:
        bad: list[FieldViolation] = []
        check_user_id(bad, user_id)
        number = _letter_id(bad, letter_id)
        if note is not None:
            check_text(bad, "note", note, 500)
        raise_if(bad)
        async with self.pool.acquire() as conn:
            letter = await dead_letters.get(conn, user_id, number)
        if letter is None:
            raise NotFound(
                "DEAD_LETTER_NOT_FOUND", f"no dead letter {letter_id}", {"letter_id": letter_id}
            )
        if letter.status != "OPEN":
            raise FailedPrecondition(
                "DEAD_LETTER_NOT_OPEN",
                f"the dead letter is {letter.status}",
                {"letter_id": letter_id, "status": letter.status},
            )
        return letter

    async def retry(self, user_id: str, letter_id: str) -> common_pb2.DeadLetter:
        letter = await self._open(user_id, letter_id)
        try:
            await self._retry(letter)
        except PeerRefused as exc:
            async with self.pool.acquire() as conn:
                await dead_letters.record(conn, letter.user_id, letter.kind, letter.subject, exc)
            raise FailedPrecondition(
                exc.reason, f"refused again: {exc.error.message}", {"letter_id": letter_id}
            ) from None
        async with self.pool.acquire() as conn:
            return message(await dead_letters.mark(conn, letter, "RETRIED"))

    async def resolve(self, user_id: str, letter_id: str, note: str) -> common_pb2.DeadLetter:
        letter = await self._open(user_id, letter_id, note)
        if not note:
            raise_if([FieldViolation("note", "is required")])
        async with self.pool.acquire() as conn:
            return message(await dead_letters.mark(conn, letter, "RESOLVED", note))


class DeadLetterRpcs:
    """The three admin RPCs over a desk, mixed into a servicer whose package (`messages`, its
    *_pb2 module) defines the ListDeadLetters/RetryDeadLetter/ResolveDeadLetter messages."""

    dead_letters: DeadLetterDesk
    messages: ModuleType
    requests: RequestLog

    async def ListDeadLetters(self, request: Any, context: Any) -> Any:
        letters, token = await self.dead_letters.list(
            request.status, request.page_size, request.page_token
        )
        return self.messages.ListDeadLettersResponse(dead_letters=letters, next_page_token=token)

    async def RetryDeadLetter(self, request: Any, context: Any) -> Any:
        async def work() -> Any:
            letter = await self.dead_letters.retry(request.user_id, request.letter_id)
            return self.messages.RetryDeadLetterResponse(dead_letter=letter)

        response = self.messages.RetryDeadLetterResponse
        return await self.requests.admin("RetryDeadLetter", request, response, work)

    async def ResolveDeadLetter(self, request: Any, context: Any) -> Any:
        async def work() -> Any:
            letter = await self.dead_letters.resolve(
                request.user_id, request.letter_id, request.note
            )
            return self.messages.ResolveDeadLetterResponse(dead_letter=letter)

        response = self.messages.ResolveDeadLetterResponse
        return await self.requests.admin("ResolveDeadLetter", request, response, work)


def not_retryable(letter: Letter) -> FailedPrecondition:
    return FailedPrecondition(
        "DEAD_LETTER_NOT_RETRYABLE",
        f"{letter.kind} work was settled when it was refused and cannot run again",
        {"letter_id": str(letter.letter_id)},
    )
