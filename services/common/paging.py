"""Paging of every List RPC (AIP-158), in one place: the page size checked against its kind of
list, one row more fetched than the page to tell whether another page follows, and the opaque
token — the position after the page's last item, as base64 of a JSON list of strings.

Two kinds of list, each with one default and one maximum (the protos state them):
- `LIST`: what a person or a program pages through (a member's transfers, events and
  redemptions; reviews, items, versions, dead letters, deliveries): default 50, at most 500.
- `EXPORT`: scans of the whole membership (ListMembers): default 100, at most 1000.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from services.common.errors import FieldViolation, InvalidArgument
from services.common.validation import Checker, ascii_number

T = TypeVar("T")


@dataclass(frozen=True)
class ListKind:
    default: int
    maximum: int


LIST = ListKind(default=50, maximum=500)
EXPORT = ListKind(default=100, maximum=1000)


def invalid_token() -> InvalidArgument:
    return InvalidArgument.fields(
        [FieldViolation("page_token", "is not a token returned by this RPC")]
    )


def encode_token(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode()


def decode_token(token: str, parts: int) -> list[str]:
    """The `parts` strings of a token from `encode_token`; INVALID_ARGUMENT for anything else
    (including NUL characters, which PostgreSQL text cannot hold)."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise invalid_token() from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != parts
        or not all(isinstance(p, str) and "\x00" not in p for p in decoded)
    ):
        raise invalid_token()
    return decoded


def token_number(part: str) -> int:
    """A numeric id read back from a token."""
    number = ascii_number(part)
    if number is None:
        raise invalid_token()
    return number


def token_time(part: str) -> datetime:
    """A time read back from a token (written with `datetime.isoformat`)."""
    try:
        return datetime.fromisoformat(part)
    except ValueError:
        raise invalid_token() from None


class Pager:
    """One List request's paging. `limit` is the page's size; ask the repository for `fetch`
    rows (one more), then `page` cuts the extra row off and makes the next token from the last
    row kept. `after` holds the token's parts, or None on the first page."""

    def __init__(
        self, checker: Checker, kind: ListKind, size: int, token: str, parts: int = 1
    ) -> None:
        checker.require(
            0 <= size <= kind.maximum,
            "page_size",
            f"must be between 0 and {kind.maximum} (0: {kind.default})",
        )
        self.limit = size or kind.default
        self.after = decode_token(token, parts) if token else None

    @property
    def fetch(self) -> int:
        return self.limit + 1

    def page(
        self, rows: Sequence[T], position: Callable[[T], Sequence[str]]
    ) -> tuple[list[T], str]:
        """The rows of this page, and the token of the next one ("" when this is the last)."""
        kept = list(rows[: self.limit])
        more = len(rows) > self.limit
        return kept, encode_token(*position(kept[-1])) if more else ""
