"""The catalog of services is the one list: every service package is in it, and what derives
from it agrees."""

from pathlib import Path

from gateway.backends import SERVICES as BACKENDS
from gateway.errors import REASONS
from scripts.k8s_manifests import PROCESSES
from services.common import catalog
from services.common.outbox import EVENT_TYPES
from services.common.settings import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[3]


def test_every_service_package_is_in_the_catalog_and_everything_derives_from_it() -> None:
    packages = {p.parent.name for p in (ROOT / "services").glob("*/migrations")}
    assert packages == set(catalog.BY_NAME)
    assert set(BACKENDS) == set(catalog.BY_NAME)
    assert {p.name for p in PROCESSES} == {*catalog.BY_NAME, catalog.GATEWAY}
    assert {name: DEFAULT_PORTS[name] for name in catalog.BY_NAME} == {
        s.name: s.port for s in catalog.SERVICES
    }
    assert len(set(DEFAULT_PORTS.values())) == len(DEFAULT_PORTS)
    for service in catalog.SERVICES:
        assert set(service.reasons) <= set(REASONS), service.name
        assert EVENT_TYPES.get(service.name, ()) == service.events
        assert service.full_name.startswith(f"loyalty.{service.name}.v1.")
