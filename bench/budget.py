"""The hot paths' CPU budget, and the table `make bench` ends with.

`python -m bench.budget check` runs each hot path's benchmark with BENCH_CHECK=1 (a few hundred
operations, production sampling), reads its `CPU <name> <ms>` line (CPU per operation of every
process, PostgreSQL included, counted from /proc) and fails when a path costs more than its
budget in bench/budget.json by more than TOLERANCE. A change that must cost more raises the
budget in the same commit and says why in its `why`.

`python -m bench.budget table LOG` prints, from the output of `make bench`, each path's ratio
to its same-run floor and its CPU per operation beside the goals.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = ROOT / "bench" / "budget.json"
TOLERANCE = 0.20
LINE = re.compile(r"^(RATIO|CPU) (\S+) ([0-9.]+)$", re.MULTILINE)


@dataclass(frozen=True)
class HotPath:
    name: str
    script: str
    ops: int  # operations per check (BENCH_OPS): enough that a path's cost settles
    budget_ms: float  # what CI holds (CPU ms per operation, every process)
    goal_ms: float  # where the path should get to
    goal_ratio: float | None  # to the same-run floor, where there is one
    why: str

    @property
    def limit_ms(self) -> float:
        return self.budget_ms * (1 + TOLERANCE)


def load(path: Path = BUDGETS) -> list[HotPath]:
    return [HotPath(name, **fields) for name, fields in json.loads(path.read_text()).items()]


def figures(output: str) -> dict[str, dict[str, float]]:
    """{"RATIO": {name: value}, "CPU": {name: ms}} from benchmark output."""
    found: dict[str, dict[str, float]] = {"RATIO": {}, "CPU": {}}
    for kind, name, value in LINE.findall(output):
        found[kind][name] = float(value)
    return found


def verdicts(
    paths: list[HotPath], cpu: dict[str, float]
) -> list[tuple[HotPath, float | None, bool]]:
    """Each path with its measured CPU (None when the benchmark printed none) and whether it
    is within budget (a missing figure is not)."""
    return [
        (path, cpu.get(path.name), path.name in cpu and cpu[path.name] <= path.limit_ms)
        for path in paths
    ]


def run_checks(paths: list[HotPath]) -> str:
    output, ran = [], set()
    for path in paths:
        if path.script in ran:
            continue  # one run of a script checks every path it prints
        ran.add(path.script)
        print(f"== {path.script}", flush=True)
        done = subprocess.run(
            [sys.executable, path.script],
            cwd=ROOT,
            env={**os.environ, "BENCH_CHECK": "1", "BENCH_OPS": str(path.ops)},
            capture_output=True,
            text=True,
        )
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
        output.append(done.stdout)
    return "".join(output)


def check() -> int:
    paths = load()
    results = verdicts(paths, figures(run_checks(paths))["CPU"])
    print(f"\n{'path':<16} {'CPU ms/op':>10} {'budget':>8} {'limit':>8} {'goal':>6}")
    for path, measured, ok in results:
        shown = f"{measured:.3f}" if measured is not None else "none"
        print(
            f"{path.name:<16} {shown:>10} {path.budget_ms:>8.3f} {path.limit_ms:>8.3f}"
            f" {path.goal_ms:>6.2f}  {'ok' if ok else 'OVER BUDGET'}"
        )
    return 0 if all(ok for _, _, ok in results) else 1


def table(output: str) -> None:
    found = figures(output)
    print(f"\n{'path':<16} {'ratio':>6} {'goal':>6} {'CPU ms/op':>10} {'budget':>7} {'goal':>6}")
    for path in load():
        ratio = found["RATIO"].get(path.name)
        cpu = found["CPU"].get(path.name)
        print(
            f"{path.name:<16} {_num(ratio, 3):>6} {_num(path.goal_ratio, 2):>6}"
            f" {_num(cpu, 3):>10} {path.budget_ms:>7.3f} {path.goal_ms:>6.2f}"
        )


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"]:
        return check()
    if argv[:1] == ["table"] and len(argv) == 2:
        table(Path(argv[1]).read_text())
        return 0
    print("usage: python -m bench.budget check | table LOG", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
