"""Sizes a reader can hold: no production file over 600 lines and no function over 70 (in the
spirit of TigerBeetle's style: a function fits on a screen). `make lint` runs this beside
ruff's complexity rules; `EXCEPTIONS` names a function allowed to be longer, and why (only a
function that is one SQL statement may be).

    python -m scripts.check_sizes [path ...]
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ("services", "gateway", "scripts", "bench")
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 70
# "path::function": why it may be longer. Empty today.
EXCEPTIONS: dict[str, str] = {}


def problems(path: Path, source: str) -> Iterator[str]:
    """What in one file is over the limits, as `path:line: message`."""
    where = path.relative_to(ROOT) if path.is_absolute() else path
    lines = source.count("\n") + (0 if source.endswith("\n") or not source else 1)
    if lines > MAX_FILE_LINES:
        yield f"{where}:1: {lines} lines, more than {MAX_FILE_LINES}: split it by concern"
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_FUNCTION_LINES and f"{where}::{node.name}" not in EXCEPTIONS:
            yield (
                f"{where}:{node.lineno}: {node.name} is {length} lines, "
                f"more than {MAX_FUNCTION_LINES}"
            )


def files(paths: list[str]) -> Iterator[Path]:
    for name in paths or PRODUCTION:
        root = Path(name) if Path(name).is_absolute() else ROOT / name
        yield from [root] if root.is_file() else sorted(root.rglob("*.py"))


def main(paths: list[str]) -> int:
    found = [p for path in files(paths) for p in problems(path, path.read_text())]
    print("\n".join(found) or "sizes: every file and function within its limit")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
