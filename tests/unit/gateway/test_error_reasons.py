"""Every reason a service can return is listed in its proto (ErrorReason enums): a client
generated from protos/ alone knows every reason it may meet."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2
from loyalty.mall.v1 import mall_pb2
from loyalty.rules.v1 import rules_pb2
from loyalty.webhooks.v1 import webhooks_pb2

ROOT = Path(__file__).resolve().parents[3]
# Calls whose string arguments are reasons: the error types and the helpers that build them.
RAISERS = {
    "FailedPrecondition",
    "NotFound",
    "AlreadyExists",
    "ResourceExhausted",
    "Unavailable",
    "Aborted",
    "InvalidArgument",
    "Internal",
    "_fail",
    "_failure",
    "_draw_failed",
    "_void",
}
REASON = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")


def reasons_in(paths: Iterable[Path]) -> set[str]:
    """String constants passed to an error (or assigned to `reason`) in these modules."""
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            values: list[ast.expr] = []
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "reason" for t in node.targets
            ):
                values = [node.value]
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in RAISERS:
                    values = list(node.args[:2])
            found |= {
                v.value
                for v in values
                if isinstance(v, ast.Constant)
                and isinstance(v.value, str)
                and REASON.match(v.value)
            }
    return found


def listed(enum: Any) -> set[str]:  # a generated enum class; keys() lists its names
    return {name.removeprefix("ERROR_REASON_") for name in enum.keys()} - {"UNSPECIFIED"}


COMMON = listed(common_pb2.ErrorReason)


@pytest.mark.parametrize(
    ("service", "enum"),
    [
        ("ledger", ledger_pb2.ErrorReason),
        ("rules", rules_pb2.ErrorReason),
        ("mall", mall_pb2.ErrorReason),
        ("webhooks", webhooks_pb2.ErrorReason),
    ],
)
def test_every_reason_a_service_returns_is_in_its_proto(service: str, enum: Any) -> None:
    found = reasons_in((ROOT / "services" / service).glob("*.py"))
    assert found, "the scan found no reasons at all"
    assert found - listed(enum) - COMMON == set()


def test_the_chassis_returns_only_listed_reasons() -> None:
    """The chassis raises shared reasons, and on a service's behalf (a peer client's refusal
    such as RISK_DENIED) reasons of the service that uses it."""
    found = reasons_in((ROOT / "services" / "common").glob("*.py"))
    everywhere = COMMON | set().union(
        *(listed(p.ErrorReason) for p in (ledger_pb2, rules_pb2, mall_pb2, webhooks_pb2))
    )
    assert "IDEMPOTENCY_KEY_REUSED" in found
    assert found - everywhere == set()


def test_the_scan_finds_reasons_in_assignments_and_calls(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        'reason = "OUT_OF_STOCK"\nraise NotFound("ITEM_NOT_FOUND", "x")\nf("NOT_A_REASON")\n'
    )
    assert reasons_in([module]) == {"OUT_OF_STOCK", "ITEM_NOT_FOUND"}
