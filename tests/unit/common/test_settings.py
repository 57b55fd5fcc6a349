from datetime import timedelta

import pytest

from gateway.settings import GatewaySettings
from services.common.settings import ServiceSettings, SettingsError, peer_address
from services.rules.config import RulesConfig

URL = "postgresql://postgres@127.0.0.1:5432/points"


def test_defaults_and_per_service_database_url() -> None:
    settings = ServiceSettings.from_env(
        "ledger", {"DATABASE_URL": URL, "LEDGER_DATABASE_URL": URL + "_ledger"}
    )
    assert settings.port == 50051
    assert settings.database_url.endswith("points_ledger")
    assert settings.telemetry.service == "ledger"
    assert settings.telemetry.otlp_endpoint is None
    assert ServiceSettings.from_env("mall", {"DATABASE_URL": URL}).database_url == URL


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"LEDGER_PORT": "abc"}, "LEDGER_PORT"),
        ({"LEDGER_PORT": "70000"}, "LEDGER_PORT"),
        ({"DB_POOL_MAX": "-1"}, "DB_POOL_MAX"),
        ({"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}, "DB_POOL_MAX"),
        ({"GRACE_PERIOD_SECONDS": "soon"}, "GRACE_PERIOD_SECONDS"),
        ({"GRACE_PERIOD_SECONDS": "nan"}, "GRACE_PERIOD_SECONDS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"LEDGER_DATABASE_URL": "sqlite://x"}, "LEDGER_DATABASE_URL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        ServiceSettings.from_env("ledger", {"DATABASE_URL": URL, **env})


def test_missing_database_url_names_both_variables() -> None:
    with pytest.raises(SettingsError, match=r"LEDGER_DATABASE_URL.*DATABASE_URL"):
        ServiceSettings.from_env("ledger", {})


def test_gateway_backends_from_env() -> None:
    settings = GatewaySettings.from_env({"LEDGER_ADDR": "ledger:50051", "GATEWAY_PORT": "9000"})
    assert settings.port == 9000
    assert settings.backends == {
        "ledger": "ledger:50051",
        "rules": "127.0.0.1:50052",
        "mall": "127.0.0.1:50053",
        "webhooks": "127.0.0.1:50054",
    }
    with pytest.raises(SettingsError, match="BACKEND_TIMEOUT_SECONDS"):
        GatewaySettings.from_env({"BACKEND_TIMEOUT_SECONDS": "0"})


def test_gateway_access_log_is_off_unless_asked_for() -> None:
    assert GatewaySettings.from_env({}).access_log is False
    assert GatewaySettings.from_env({"GATEWAY_ACCESS_LOG": "on"}).access_log is True
    with pytest.raises(SettingsError, match="GATEWAY_ACCESS_LOG"):
        GatewaySettings.from_env({"GATEWAY_ACCESS_LOG": "yes please"})


def test_a_peer_is_one_name_or_a_list_of_replica_addresses() -> None:
    assert peer_address("ledger", {}) == "127.0.0.1:50051"
    assert peer_address("ledger", {"LEDGER_ADDR": "ledger.points.svc:50051"}) == (
        "ledger.points.svc:50051"
    )
    listed = {"RULES_ADDR": "10.0.0.5:50052, localhost:50062"}
    assert peer_address("rules", listed) == "ipv4:10.0.0.5:50052,127.0.0.1:50062"
    assert peer_address("mall", {"MALL_ADDR": "[::1]:1,[fd00::2]:2"}) == "ipv6:[::1]:1,[fd00::2]:2"
    for bad, words in [
        ("rules-a:50052,rules-b:50052", "one DNS name"),
        ("10.0.0.5:50052,[::1]:50052", "all IPv4 or all IPv6"),
        ("10.0.0.5,10.0.0.6:1", "has no port"),
    ]:
        with pytest.raises(SettingsError, match=words):
            peer_address("rules", {"RULES_ADDR": bad})


def test_event_retention_keeps_replays_recognisable() -> None:
    assert RulesConfig.from_env({}).event_retention is None  # every month kept
    assert RulesConfig.from_env({"RULES_EVENT_RETENTION_DAYS": "400"}).event_retention == (
        timedelta(days=400)
    )
    with pytest.raises(SettingsError, match="at least 38"):
        RulesConfig.from_env({"RULES_EVENT_RETENTION_DAYS": "30"})


def test_gateway_wallet_parts_time_is_never_negative() -> None:
    assert GatewaySettings.from_env({}).wallet_parts_seconds == 10.0
    assert GatewaySettings.from_env({"GATEWAY_WALLET_PARTS_SECONDS": "0"}).wallet_parts_seconds == 0
    with pytest.raises(SettingsError, match="GATEWAY_WALLET_PARTS_SECONDS"):
        GatewaySettings.from_env({"GATEWAY_WALLET_PARTS_SECONDS": "-1"})
