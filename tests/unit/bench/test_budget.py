"""bench/budget.py: reading benchmark output and holding it against the committed budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import budget

OUTPUT = """== bench/ledger_throughput.py
[ledger_write] CPU ms per op: ledger 0.600  postgres 0.500
CPU ledger_write 1.100
RATIO ledger_write 0.412
noise CPU not_a_line 1.0
"""


def test_figures_reads_ratio_and_cpu_lines_only() -> None:
    found = budget.figures(OUTPUT)
    assert found == {"RATIO": {"ledger_write": 0.412}, "CPU": {"ledger_write": 1.1}}


def _path(name: str, budget_ms: float) -> budget.HotPath:
    return budget.HotPath(name, "bench/x_y.py", 100, budget_ms, budget_ms / 2, None, "test")


def test_a_path_within_its_tolerance_passes_and_one_past_it_fails() -> None:
    paths = [_path("a", 1.0), _path("b", 1.0), _path("c", 1.0)]
    results = budget.verdicts(paths, {"a": 1.19, "b": 1.21})
    assert [(p.name, cpu, ok) for p, cpu, ok in results] == [
        ("a", 1.19, True),
        ("b", 1.21, False),
        ("c", None, False),  # printed nothing: the check cannot pass on silence
    ]


def test_the_committed_budgets_name_real_scripts_and_say_why() -> None:
    paths = budget.load()
    assert {p.name for p in paths} >= {
        "ledger_write",
        "ledger_read",
        "rules_event",
        "mall_redeem",
        "gateway_wallet",
        "bulk_import",
        "chassis_echo",
    }
    for path in paths:
        assert (budget.ROOT / path.script).is_file(), path.script
        assert path.budget_ms > 0 and path.goal_ms > 0 and path.ops > 0
        assert path.why.strip(), path.name


def test_table_prints_each_path_with_its_figures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "bench.log"
    log.write_text(OUTPUT)
    assert budget.main(["table", str(log)]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if "ledger_write" in line]
    assert row.split()[1:2] == ["0.412"] and "1.100" in row
