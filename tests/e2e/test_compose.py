"""docker-compose.yml cannot be started here (no Docker engine), so check it statically:
valid against the Compose Specification schema, and consistent with what the code reads."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.settings import GatewaySettings
from services.common.settings import ServiceSettings, peer_address
from services.ledger.config import LedgerConfig
from services.mall.config import MallConfig
from services.rules.config import RulesConfig
from services.webhooks.config import WebhooksConfig
from tests.support.dashboards import ALERTS, DASHBOARDS, alert_rules, dashboards, metric_names

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "compose_spec.json").read_text())
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
GRPC_SERVICES = ("ledger", "rules", "mall", "webhooks")
# The schema declares draft 2019-09 (with a trailing "#" jsonschema does not recognise).
jsonschema.Draft201909Validator.check_schema(SCHEMA)
VALIDATOR = jsonschema.Draft201909Validator(SCHEMA)


class RecordingEnv(dict[str, str]):
    """An environment that remembers which variables the code asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def test_compose_file_is_valid_against_the_specification() -> None:
    VALIDATOR.validate(COMPOSE)


def test_schema_rejects_a_broken_file() -> None:
    broken: dict[str, Any] = {
        "services": {"ledger": {"image": "x", "ports": [{"bogus": 1}], "restart": 3}}
    }
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(broken)


# What each service reads beyond the chassis settings (its own config, its peers).
def relay(env: Mapping[str, str]) -> object:
    """What every service's outbox relay reads (services/common/relay.py)."""
    return env.get("WEBHOOKS_ADDR"), env.get("OUTBOX_RELAY_SECONDS")


SERVICE_READERS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "ledger": lambda env: (LedgerConfig.from_env(env), relay(env)),
    "webhooks": WebhooksConfig.from_env,
    "rules": lambda env: (RulesConfig.from_env(env), peer_address("ledger", env), relay(env)),
    "mall": lambda env: (
        MallConfig.from_env(env),
        peer_address("ledger", env),
        peer_address("rules", env),
        relay(env),
    ),
}


def _port_and_env(name: str) -> tuple[int, RecordingEnv, str]:
    service = COMPOSE["services"][name]
    env = RecordingEnv({k: str(v) for k, v in service["environment"].items()})
    if name == "gateway":
        gateway = GatewaySettings.from_env(env)
        return gateway.port, env, gateway.host
    settings = ServiceSettings.from_env(name, env)
    if name in SERVICE_READERS:
        SERVICE_READERS[name](env)
    return settings.port, env, settings.host


@pytest.mark.parametrize("name", [*GRPC_SERVICES, "gateway"])
def test_service_command_port_and_environment_match_the_code(name: str) -> None:
    service = COMPOSE["services"][name]
    command = service["command"]
    assert command[:2] == ["python", "-m"]
    module = importlib.import_module(command[2])
    if name in GRPC_SERVICES:
        assert module.SPEC.name == name
    port, env, host = _port_and_env(name)
    assert host == "0.0.0.0"  # reachable from other containers
    assert f"{port}:{port}" in service["ports"]
    assert any(f"127.0.0.1:{port}" in part for part in service["healthcheck"]["test"])
    assert service["healthcheck"]["test"][1:4] == ["python", "-m", "services.common.healthcheck"]
    # Every variable set in compose is one the code reads (the OTel SDK reads OTEL_* itself).
    unused = {key for key in env if key not in env.read and not key.startswith("OTEL_")}
    assert not unused, f"{name} sets variables the code never reads: {unused}"
    assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-collector:4317"


@pytest.mark.parametrize(
    ("caller", "callee"), [("rules", "ledger"), ("mall", "ledger"), ("mall", "rules")]
)
def test_services_reach_their_peers(caller: str, callee: str) -> None:
    service = COMPOSE["services"][caller]
    address = service["environment"][f"{callee.upper()}_ADDR"]
    assert address == f"{callee}:{_port_and_env(callee)[0]}"
    assert service["depends_on"][callee]["condition"] == "service_healthy"


def test_gateway_backends_point_at_the_services_ports() -> None:
    backends = GatewaySettings.from_env(
        {k: str(v) for k, v in COMPOSE["services"]["gateway"]["environment"].items()}
    ).backends
    for name, address in backends.items():
        host, port = address.split(":")
        assert host == name
        assert int(port) == _port_and_env(name)[0]


def test_dependencies_wait_for_healthy_services() -> None:
    services = COMPOSE["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    for name in GRPC_SERVICES:
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_collector_config_exists_and_exports_to_jaeger() -> None:
    config = yaml.safe_load(_mounts("otel-collector")["/etc/otelcol/config.yaml"].read_text())
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert "otlp/jaeger" in config["service"]["pipelines"]["traces"]["exporters"]
    assert (ROOT / COMPOSE["x-points-service"]["build"]["dockerfile"]).exists()


def _mounts(service: str) -> dict[str, Path]:
    """Container path -> file or folder of the repository, for a service's bind mounts."""
    mounts = {}
    for volume in COMPOSE["services"][service]["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = ROOT / source
    return mounts


def test_collector_has_a_pipeline_per_signal_with_defined_parts() -> None:
    config = yaml.safe_load(_mounts("otel-collector")["/etc/otelcol/config.yaml"].read_text())
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for pipeline in pipelines.values():
        for part in ("receivers", "processors", "exporters"):
            for name in pipeline[part]:
                assert name in config[part], name
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert config["exporters"]["prometheus"]["resource_to_telemetry_conversion"]["enabled"]


def test_prometheus_scrapes_the_collector_and_loads_the_alerts() -> None:
    mounts = _mounts("prometheus")
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    collector = yaml.safe_load(_mounts("otel-collector")["/etc/otelcol/config.yaml"].read_text())
    port = collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    targets = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert targets == [f"otel-collector:{port}"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert mounts["/etc/prometheus/alerts.yml"] == ALERTS
    for rule in alert_rules():
        assert rule["alert"].startswith("Points") and rule["expr"].strip()
        assert rule["annotations"]["summary"]
        assert metric_names(rule["expr"]), rule["alert"]


def test_grafana_provisions_the_dashboards_with_data_sources_they_name() -> None:
    mounts = _mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    sources = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())
    uids = {source["uid"]: source for source in sources["datasources"]}
    assert uids["prometheus"]["url"] == "http://prometheus:9090"
    assert uids["jaeger"]["url"] == "http://jaeger:16686"
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    [provider] = providers["providers"]
    assert mounts[provider["options"]["path"]] == DASHBOARDS[0].parent
    boards = dashboards()
    assert len({b["uid"] for b in boards}) == len(boards) == 2
    home = COMPOSE["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert (DASHBOARDS[0].parent / Path(home).name).exists()
    for board in boards:
        ids = [panel["id"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids), board["title"]
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] in uids
            assert panel["targets"] and all(metric_names(t["expr"]) for t in panel["targets"])
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                    for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
            assert not area & cells, f"{board['title']}: {panel['title']} overlaps"
            cells |= area


def test_metric_names_are_read_from_promql() -> None:
    expression = (
        'sum by (rpc_method) (rate(rpc_server_call_duration_seconds_count{service_name=~"a|b",'
        ' x!=""}[5m])) / max(points_ledger_liability offset 1h)'
    )
    assert metric_names(expression) == {
        "rpc_server_call_duration_seconds_count",
        "points_ledger_liability",
    }


HA: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.ha.yml").read_text())


def test_the_ha_override_is_valid_and_every_service_follows_the_formation() -> None:
    VALIDATOR.validate(HA)
    nodes = sorted(n for n in HA["services"] if n.startswith("pg-node"))
    assert len(nodes) == 2
    for node in nodes:
        command = HA["services"][node]["command"]
        assert "--monitor postgres://autoctl_node@pg-monitor:5432/" in command
        assert f"--hostname {node} " in command
    for name in GRPC_SERVICES:
        assert name in COMPOSE["services"]  # the override extends the base file's services
        url = HA["services"][name]["environment"]["DATABASE_URL"]
        assert url.split("@")[1].split("/")[0] == ",".join(f"{n}:5432" for n in nodes)
        assert url.endswith("?target_session_attrs=read-write")
        ServiceSettings.from_env(name, {"DATABASE_URL": url})  # the services accept it
    assert (ROOT / HA["services"]["pg-monitor"]["build"]["dockerfile"]).exists()
