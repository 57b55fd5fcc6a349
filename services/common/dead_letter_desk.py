"""The operators' side of dead letters (list, retry, resolve), shared by rules and mall.

Each service passes the function that re-runs one letter's work; everything else (checks,
paging, the letter's states) is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import asyncpg

from loyalty.common.v1 import common_pb2
from services.common import dead_letters
from services.common.dead_letters import Letter
from services.common.errors import FailedPrecondition, NotFound
from services.common.idempotency import RequestLog
from services.common.paging import LIST, Pager, token_number, token_time
from services.common.peers import PeerRefused
from services.common.timestamps import to_timestamp
from services.common.validation import Checker

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


class DeadLetterDesk:
    def __init__(self, pool: asyncpg.Pool, retry: Retry) -> None:
        self.pool = pool
        self._retry = retry

    async def list(
        self, status: int, page_size: int, page_token: str
    ) -> tuple[list[common_pb2.DeadLetter], str]:
        checker = Checker()
        pager = Pager(checker, LIST, page_size, page_token, parts=3)
        checker.done()
        after = None
        if pager.after:
            created, user_id, letter_id = pager.after
            after = (token_time(created), user_id, token_number(letter_id))
        name = (
            common_pb2.DeadLetterStatus.Name(status).removeprefix("DEAD_LETTER_STATUS_")  # type: ignore[arg-type]
            if status
            else None
        )
        async with self.pool.acquire() as conn:
            letters = await dead_letters.listing(conn, name, after, pager.fetch)
        page, token = pager.page(
            letters, lambda last: [last.created_at.isoformat(), last.user_id, str(last.letter_id)]
        )
        return [message(letter) for letter in page], token

    async def _open(self, user_id: str, letter_id: str, note: str | None = None) -> Letter:
        checker = Checker()
        checker.user_id(user_id)
        number = checker.number("letter_id", letter_id, "must be an id returned by ListDeadLetters")
        if note is not None:
            checker.text("note", note, 500)
        checker.done()
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
        letter = await self._open(user_id, letter_id, note)  # the note is required
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
