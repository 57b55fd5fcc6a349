import json
from typing import Any

import jsonschema
import pytest

from scripts import openapi

DOCUMENT: dict[str, Any] = json.loads(openapi.document())
OPERATIONS = [
    (f"{method.upper()} {path}", operation)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
]


def test_the_committed_openapi_document_is_current() -> None:
    assert openapi.PATH.read_text() == openapi.document(), "run `make openapi` and commit it"


def _examples(operation: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(where, example, schema) for the body and each success response of an operation."""
    found = []
    for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
        found.append((f"request {media_type}", media.get("example"), media["schema"]))
    for status, response in operation["responses"].items():
        for media_type, media in response.get("content", {}).items():
            if status.startswith("2") and media_type == "application/json":
                found.append((f"{status} {media_type}", media.get("example"), media["schema"]))
    return found


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=[n for n, _ in OPERATIONS])
def test_every_operation_has_examples_that_match_their_schemas(
    name: str, operation: dict[str, Any]
) -> None:
    checked = _examples(operation)
    for parameter in operation.get("parameters", []):
        checked.append((parameter["name"], parameter.get("example"), parameter["schema"]))
    for where, example, schema in checked:
        assert example is not None, f"{name}: no example for {where}"
        # Validated against the whole document so that $refs resolve.
        jsonschema.validate(example, {**schema, "components": DOCUMENT["components"]})


CHANGING = [(name, op) for name, op in OPERATIONS if name.split()[0] in ("POST", "PUT", "DELETE")]
# What the README names as going without: reads sent as POST because their input is a body, and
# the batch of events, each of which carries its own key (event_id).
WITHOUT_KEY = {
    "POST /v1/admin/simulations",
    "POST /v1/checkout/quote",
    "POST /v1/coupons/validate",
    "POST /v1/events/batch",
}


@pytest.mark.parametrize(("name", "operation"), CHANGING, ids=[n for n, _ in CHANGING])
def test_every_route_that_changes_something_requires_an_idempotency_key(
    name: str, operation: dict[str, Any]
) -> None:
    keys = [p for p in operation.get("parameters", []) if p["name"] == "Idempotency-Key"]
    if name in WITHOUT_KEY:
        assert not keys, f"{name} takes a key: take it out of WITHOUT_KEY and the README"
    else:
        assert keys and keys[0]["required"] and keys[0]["in"] == "header", name
