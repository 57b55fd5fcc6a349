"""The deployable image, checked statically (no Docker engine here): stages, a runtime without
compiler or grpcio-tools that runs as non-root with a healthcheck, and hashed locks that agree
with the project's pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from services.common.healthcheck import container_target

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()


def _stages() -> dict[str, list[str]]:
    """Instructions per stage (continuation lines joined), by stage name."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            current = stages.setdefault(line.split(" AS ")[-1], [])
        current.append(line)
    return stages


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", line)
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_the_runtime_stage_has_no_build_tools_and_runs_as_non_root() -> None:
    stages = _stages()
    assert list(stages) == ["protoc", "dependencies", "runtime"]
    runtime = stages["runtime"]
    text = "\n".join(runtime)
    assert "grpc_tools" not in text and "grpcio-tools" not in text
    assert not re.search(r"apt-get|gcc|build-essential|pip install", text)
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") and "services.common.healthcheck" in line
               for line in runtime)  # fmt: skip
    installs = [line for stage in stages.values() for line in stage if "pip install" in line]
    assert installs and all("--require-hashes" in line for line in installs)


def test_what_the_image_copies_exists_and_is_not_ignored() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for line in (line for stage in _stages().values() for line in stage):
        if line.startswith("COPY ") and "--from=" not in line:
            source = line.split()[1]
            assert (ROOT / source).exists(), source
            assert source.split("/")[0] not in ignored, source


def test_the_hashed_locks_pin_what_the_project_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {
        d.split("==")[0].lower(): d.split("==")[1].split()[0] for d in project["dependencies"]
    }
    image = _pins(ROOT / "deploy" / "requirements-image.lock")
    protoc = _pins(ROOT / "deploy" / "requirements-protoc.lock")
    assert "grpcio-tools" not in image and protoc["grpcio-tools"] == wanted["grpcio-tools"]
    for name, version in wanted.items():
        if name != "grpcio-tools":
            assert image.get(name) == version, name
    pinned = _pins(ROOT / "requirements.lock")
    for name, version in {**image, **protoc}.items():
        if name in pinned:
            assert pinned[name] == version, name
    for lock in ("requirements-image.lock", "requirements-protoc.lock"):
        blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "deploy" / lock).read_text().strip())
        assert all("--hash=sha256:" in block for block in blocks), lock


@pytest.mark.parametrize(
    ("command", "environ", "target"),
    [
        (["python", "-m", "services.ledger.server"], {}, "127.0.0.1:50051"),
        (["python", "-m", "services.mall.server"], {"MALL_PORT": "6000"}, "127.0.0.1:6000"),
        (["python", "-m", "services.webhooks.server"], {}, "127.0.0.1:50054"),
        (["python", "-m", "gateway.main"], {"GATEWAY_PORT": "9000"}, "http://127.0.0.1:9000/healthz"),
        (["python", "-m", "services.cli", "migrate", "up"], {}, None),
    ],
)  # fmt: skip
def test_the_healthcheck_finds_the_process_the_container_runs(
    tmp_path: Path, command: list[str], environ: dict[str, str], target: str | None
) -> None:
    (tmp_path / "cmdline").write_bytes(b"\0".join(a.encode() for a in command) + b"\0")
    (tmp_path / "environ").write_bytes(
        b"\0".join(f"{k}={v}".encode() for k, v in {"PATH": "/bin", **environ}.items()) + b"\0"
    )
    assert container_target(tmp_path) == target
