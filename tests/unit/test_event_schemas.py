"""The published JSON Schemas of the events: valid, one per event type the code writes, and
strict enough to refuse what a consumer should not accept."""

from __future__ import annotations

import json

import jsonschema
import pytest

from services.common.outbox import EVENT_TYPES
from tests.support.events import SCHEMAS, check, validator

TYPES = sorted(t for types in EVENT_TYPES.values() for t in types)


def test_there_is_one_schema_per_event_type_and_an_envelope() -> None:
    files = sorted(path.name.removesuffix(".json") for path in SCHEMAS.glob("*.json"))
    assert files == sorted([*TYPES, "envelope"])
    for name in files:
        schema = json.loads((SCHEMAS / f"{name}.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith(f"/{name}.json") and schema["description"]


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"type": "points.credited", "data": {"amount": 5}}, "required"),
        ({"type": "points.credited", "data": {"amount": 0}}, "minimum"),
        ({"type": "review.decided", "data": {"decision": "MAYBE"}}, "enum"),
        ({"type": "points.debited", "extra": 1}, "additional"),
        ({"schema_version": 2}, "const"),
    ],
)
def test_the_schemas_refuse_malformed_events(event: dict[str, object], problem: str) -> None:
    base = {
        "id": "0b6ad2f4-7c59-4a49-9d50-6b7b4cb0c3f1",
        "type": "points.debited",
        "occurred_at": "2026-11-26T08:00:00Z",
        "member_id": "m-1",
        "schema_version": 1,
        "data": {"transfer_id": "7", "amount": 5, "reason_code": "REDEEM"},
    }
    check(base)  # the well-formed event passes
    with pytest.raises(jsonschema.ValidationError, match=problem):
        merged = {**base, **event}
        validator("envelope").validate(merged)
        validator(str(merged["type"])).validate(merged["data"])
