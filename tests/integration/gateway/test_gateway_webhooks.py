"""Webhook subscriptions over HTTP (scope admin): the gateway's routes onto the webhooks
service, with its refusals as RFC 9457 problems."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.support.gateway_calls import assert_error, bearer

PUBLIC = "https://93.184.216.34/hooks"  # a public address: no resolution, never called here


async def test_subscriptions_over_http(http: httpx.AsyncClient) -> None:
    admin = bearer("ops", "admin")
    created = await http.post(
        "/v1/admin/webhooks/subscriptions",
        json={"url": PUBLIC, "event_types": ["points.credited"], "description": "CRM"},
        headers={**admin, "Idempotency-Key": "create-crm-hook"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    subscription = body["subscription"]
    sid = subscription["subscription_id"]
    assert subscription["enabled"] and subscription["event_types"] == ["points.credited"]
    again = await http.post(
        "/v1/admin/webhooks/subscriptions",
        json={"url": PUBLIC, "event_types": ["points.credited"], "description": "CRM"},
        headers={**admin, "Idempotency-Key": "create-crm-hook"},
    )
    assert again.json() == body  # the same key answers the same subscription and secret
    listed = await http.get("/v1/admin/webhooks/subscriptions", headers=admin)
    assert sid in [s["subscription_id"] for s in listed.json()["subscriptions"]]
    paused = await http.put(
        f"/v1/admin/webhooks/subscriptions/{sid}",
        json={"url": PUBLIC, "event_types": ["*"], "enabled": False},
        headers=admin,
    )
    assert (paused.json()["enabled"], paused.json()["event_types"]) == (False, ["*"])
    rotated = await http.post(
        f"/v1/admin/webhooks/subscriptions/{sid}/secret",
        json={"overlap_seconds": 3600},
        headers=admin,
    )
    assert rotated.json()["secret"] != body["secret"]
    assert rotated.json()["subscription"]["previous_secret_expires_at"]
    log = await http.get(f"/v1/admin/webhooks/subscriptions/{sid}/deliveries", headers=admin)
    assert log.status_code == 200 and log.json().get("deliveries", []) == []
    replay = await http.post(
        f"/v1/admin/webhooks/subscriptions/{sid}/replay",
        json={"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-02T00:00:00Z"},
        headers=admin,
    )
    assert replay.status_code == 200, replay.text


async def test_refusals_are_problems(http: httpx.AsyncClient) -> None:
    admin = bearer("ops", "admin")
    private = await http.post(
        "/v1/admin/webhooks/subscriptions",
        json={"url": "http://10.0.0.5/hooks", "event_types": ["*"]},
        headers={**admin, "Idempotency-Key": "private-hook"},
    )
    problem = assert_error(private, 400, "ENDPOINT_NOT_ALLOWED")
    assert [v["field"] for v in problem["violations"]] == ["subscription.url"]
    unknown = await http.get("/v1/admin/webhooks/subscriptions/999999", headers=admin)
    assert_error(unknown, 404, "SUBSCRIPTION_NOT_FOUND")
    gone = await http.post("/v1/admin/webhooks/deliveries/999999/redeliver", headers=admin)
    assert_error(gone, 404, "DELIVERY_NOT_FOUND")
    member = await http.get("/v1/admin/webhooks/subscriptions", headers=bearer("a-member"))
    assert member.status_code == 403


async def test_a_retried_rotation_rotates_once_and_zero_overlap_ends_the_old_secret(
    http: httpx.AsyncClient,
) -> None:
    admin = bearer("ops", "admin")
    created = await http.post(
        "/v1/admin/webhooks/subscriptions",
        json={"url": PUBLIC, "event_types": ["*"]},
        headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
    )
    sid = created.json()["subscription"]["subscription_id"]
    url = f"/v1/admin/webhooks/subscriptions/{sid}/secret"
    key = {**admin, "Idempotency-Key": uuid.uuid4().hex}
    first = await http.post(url, json={"overlap_seconds": 3600}, headers=key)
    again = await http.post(url, json={"overlap_seconds": 3600}, headers=key)
    assert first.status_code == 200, first.text
    assert again.json() == first.json()  # one rotation: the secret receivers use is kept
    other = await http.post(url, json={"overlap_seconds": 60}, headers=key)
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")
    leaked = await http.post(
        url, json={"overlap_seconds": 0}, headers={**admin, "Idempotency-Key": uuid.uuid4().hex}
    )
    ended = leaked.json()["subscription"]["previous_secret_expires_at"]
    assert datetime.fromisoformat(ended) <= datetime.now(UTC)  # no overlap at all
    default = await http.post(url, json={}, headers={**admin, "Idempotency-Key": uuid.uuid4().hex})
    until = datetime.fromisoformat(default.json()["subscription"]["previous_secret_expires_at"])
    assert until > datetime.now(UTC) + timedelta(hours=23)  # absent: a day
    paused = await http.put(
        f"/v1/admin/webhooks/subscriptions/{sid}",
        json={"url": PUBLIC, "event_types": ["*"], "enabled": False},  # never called
        headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert paused.status_code == 200, paused.text


async def test_every_webhook_change_needs_an_idempotency_key(http: httpx.AsyncClient) -> None:
    none = {**bearer("ops", "admin"), "Idempotency-Key": ""}
    window = {"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-02T00:00:00Z"}
    for method, path, body in [
        (
            "PUT",
            "/v1/admin/webhooks/subscriptions/1",
            {"url": PUBLIC, "event_types": ["*"], "enabled": True},
        ),
        ("POST", "/v1/admin/webhooks/subscriptions/1/secret", {}),
        ("POST", "/v1/admin/webhooks/subscriptions/1/replay", window),
        ("POST", "/v1/admin/webhooks/deliveries/1/redeliver", None),
    ]:
        answer = await http.request(method, path, json=body, headers=none)
        assert_error(answer, 400, "MISSING_IDEMPOTENCY_KEY")
