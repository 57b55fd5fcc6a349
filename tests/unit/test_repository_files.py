"""Files a clone must carry to stand alone."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_license_file_is_the_license_the_package_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text


def test_the_image_context_leaves_out_local_environments_and_data() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "gen", "node_modules", ".data"} <= ignored


def test_the_readme_lists_every_proto_package() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = readme.split("protos/loyalty/{", 1)[1].split("}", 1)[0].split(",")
    packages = [p.name for p in sorted((ROOT / "protos" / "loyalty").iterdir()) if p.is_dir()]
    assert sorted(listed) == packages
