"""Input checks every service shares."""

from __future__ import annotations

from services.common.errors import FieldViolation, InvalidArgument

MAX_USER_ID = 128


def storable(value: str, max_length: int, *, required: bool = True) -> bool:
    """Text the API accepts: present (when required), at most `max_length` characters, and no
    NUL characters (PostgreSQL text cannot hold them)."""
    return (bool(value) or not required) and len(value) <= max_length and "\x00" not in value


def require_user_id(user_id: str) -> None:
    if not storable(user_id, MAX_USER_ID):
        raise InvalidArgument.fields(
            [FieldViolation("user_id", "is required (at most 128 characters, no NUL)")]
        )
