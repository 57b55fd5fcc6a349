"""Reading the metrics a process produced: from the tests' in-memory reader, a Prometheus
endpoint's text, or what an OTLP receiver got."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader


@dataclass(frozen=True)
class Point:
    attributes: Mapping[str, object]
    value: float  # a sum or gauge's value; a histogram's count


def collect(reader: InMemoryMetricReader) -> dict[str, list[Point]]:
    """Every metric's data points now (cumulative since the process started)."""
    found: dict[str, list[Point]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(
                    Point(
                        dict(p.attributes or {}),
                        p.count if isinstance(p, HistogramDataPoint) else p.value,  # type: ignore[union-attr]
                    )
                    for p in metric.data.data_points
                )
    return found


def total(points: list[Point], attributes: Mapping[str, object]) -> float:
    """The sum of the points whose attributes include these."""
    return sum(
        p.value for p in points if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


async def scrape_port(port: int) -> dict[str, list[Point]]:
    """What a process' Prometheus endpoint on loopback `port` shows now."""
    async with httpx.AsyncClient(timeout=5) as http:
        reply = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert reply.status_code == 200
    return scrape(reply.text)


def scrape(text: str) -> dict[str, list[Point]]:
    """Samples of a Prometheus text exposition, by sample name (e.g. `..._count`)."""
    found: dict[str, list[Point]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        attributes: dict[str, object] = {}
        for pair in _labels(labels.rstrip("}")):
            key, _, raw = pair.partition("=")
            attributes[key] = raw.strip('"')
        found.setdefault(name, []).append(Point(attributes, float(value)))
    return found


def _labels(text: str) -> list[str]:
    """Split `a="x",b="y,z"` at the commas between pairs (values may hold commas)."""
    pairs, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            pairs.append(current)
            current = ""
        else:
            current += char
    if current:
        pairs.append(current)
    return pairs
