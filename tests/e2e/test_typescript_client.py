"""openapi.json generates a typed TypeScript client (openapi-typescript) that a web team can
write against: a small program that signs in, reads the wallet and redeems type-checks under
`tsc --strict`, and the same program with a misspelt field does not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.hosts import ROOT

BIN = ROOT / "node_modules" / ".bin"
HERE = Path(__file__).resolve().parent / "typescript"


def _tsc(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "tsc"),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--lib",
            "es2022,dom",
            str(folder / "client.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ts")
    subprocess.run(
        [
            str(BIN / "openapi-typescript"),
            str(ROOT / "openapi.json"),
            "-o",
            str(folder / "api.ts"),
            # A field with a default may be left out of a request (the OpenAPI says so).
            "--default-non-nullable=false",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return folder


def test_a_client_written_against_the_generated_types_compiles(generated: Path) -> None:
    shutil.copy(HERE / "client.ts", generated / "client.ts")
    checked = _tsc(generated)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_misspelt_field_does_not(generated: Path) -> None:
    source = (HERE / "client.ts").read_text().replace("points?.available", "points?.availabel")
    (generated / "client.ts").write_text(source)
    checked = _tsc(generated)
    assert checked.returncode != 0
    assert "availabel" in checked.stdout
