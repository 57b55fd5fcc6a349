"""The audit log's hash chain (services/webhooks/audit.py) as pure logic: an intact chain
verifies, and a changed, removed or reordered entry is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.webhooks.audit import GENESIS, Verifier, chain_hash

START = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def chain(count: int) -> list[dict[str, Any]]:
    entries, previous = [], GENESIS
    for seq in range(1, count + 1):
        entry: dict[str, Any] = {
            "seq": seq, "entry_id": f"k-{seq}", "actor": "ops", "roles": ["operator"],
            "action": "PUT /v1/admin/rules/{rule_id}", "target": "/v1/admin/rules/like",
            "request_json": "{}", "response_json": "{}", "status": 200, "ip": "", "user_agent": "",
            "recorded_at": START + timedelta(seconds=seq), "prev_hash": previous,
        }  # fmt: skip
        entry["hash"] = previous = chain_hash(previous, entry)
        entries.append(entry)
    return entries


def problems(entries: list[dict[str, Any]]) -> list[str]:
    verifier = Verifier()
    for entry in entries:
        verifier.feed(entry)
    return verifier.problems


def test_an_intact_chain_verifies_and_the_time_is_hashed_to_the_microsecond() -> None:
    entries = chain(3)
    assert problems(entries) == []
    later = {**entries[0], "recorded_at": entries[0]["recorded_at"] + timedelta(microseconds=1)}
    assert chain_hash(GENESIS, later) != entries[0]["hash"]


def test_a_changed_removed_or_swapped_entry_is_named() -> None:
    entries = chain(4)
    assert problems([entries[0], {**entries[1], "status": 201}, *entries[2:]]) == [
        "entry 2: its content does not match its hash"
    ]
    assert problems([entries[0], *entries[2:]]) == ["entry 3: follows entry 1 (one is missing)"]
    forged = {**entries[2], "seq": 2, "prev_hash": entries[0]["hash"]}
    assert problems([entries[0], forged]) == ["entry 2: its content does not match its hash"]
