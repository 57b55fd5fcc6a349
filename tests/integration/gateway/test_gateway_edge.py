"""The gateway's edge: tokens from a real identity provider's algorithms (RS256 through a JWKS
URL, ES256 from a PEM key), size limits checked before anything is read, authentication before
the body, and identifiers that refuse spoofing characters."""

from __future__ import annotations

import asyncio
import http.client as http_client
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from loyalty.rules.v1 import rules_pb2 as rpb
from services.common.server import ServiceHost
from tests.support.gateway_calls import assert_error, bearer, gateway_env, operator_keys
from tests.support.hosts import serving_gateway
from tests.support.rules_calls import RulesStub


def token(key: Any, algorithm: str, user: str, kid: str | None = None) -> str:
    claims = {"sub": user, "exp": int(time.time()) + 300}
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class KeySet:
    """An identity provider's JWKS endpoint, over real HTTP on loopback: its keys by kid, and
    how often it was fetched."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0

    def document(self) -> str:
        jwks = [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": kid}
            | {"use": "sig", "alg": "RS256"}
            for kid, key in self.keys.items()
        ]
        return json.dumps({"keys": jwks})


def serve_keys(keys: KeySet) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            keys.fetches += 1
            payload = keys.document().encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()


@pytest.fixture(scope="module")
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    keys = KeySet()
    keys.keys["k1"] = rsa_key
    yield from serve_keys(keys)


@pytest.fixture(scope="module")
def backends_env(
    ledger_host: ServiceHost,
    rules_host: ServiceHost,
    mall_host: ServiceHost,
    webhooks_host: ServiceHost,
) -> dict[str, str]:
    return gateway_env(ledger_host.port, rules_host.port, mall_host.port, webhooks_host.port)


async def test_rs256_tokens_verified_with_keys_from_a_jwks_url(
    backends_env: dict[str, str], jwks_url: str, rsa_key: rsa.RSAPrivateKey, user: str
) -> None:
    env = {**backends_env, "GATEWAY_JWT_ALGORITHM": "RS256", "GATEWAY_JWKS_URL": jwks_url}
    async with serving_gateway(env) as url, httpx.AsyncClient(base_url=url) as http:
        good = token(rsa_key, "RS256", user, kid="k1")
        reply = await http.get("/v1/me/wallet", headers={"Authorization": f"Bearer {good}"})
        assert reply.status_code == 200, reply.text
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = token(other, "RS256", user, kid="k1")
        reply = await http.get("/v1/me/wallet", headers={"Authorization": f"Bearer {forged}"})
        assert_error(reply, 401, "INVALID_TOKEN")
        unknown = token(rsa_key, "RS256", user, kid="nope")
        reply = await http.get("/v1/me/wallet", headers={"Authorization": f"Bearer {unknown}"})
        assert_error(reply, 401, "INVALID_TOKEN")


async def test_a_rotated_key_is_fetched_at_once_and_bogus_kids_cannot_flood_the_provider(
    backends_env: dict[str, str], user: str
) -> None:
    keys = KeySet()
    keys.keys["old"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for url in serve_keys(keys):
        env = {
            **backends_env,
            "GATEWAY_JWT_ALGORITHM": "RS256",
            "GATEWAY_JWKS_URL": url,
            "GATEWAY_JWKS_REFRESH_SECONDS": "0.5",
        }
        async with serving_gateway(env) as gateway, httpx.AsyncClient(base_url=gateway) as http:

            async def status(kid: str, key: rsa.RSAPrivateKey) -> int:
                bearer = {"Authorization": f"Bearer {token(key, 'RS256', user, kid=kid)}"}
                return (await http.get("/v1/me/wallet", headers=bearer)).status_code

            assert await status("old", keys.keys["old"]) == 200
            keys.keys["new"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            # The provider rotated: a token signed with the new key is accepted within the
            # refresh interval, not after the set's 5-minute lifespan.
            for _ in range(100):
                if await status("new", keys.keys["new"]) == 200:
                    break
                await asyncio.sleep(0.05)
            assert await status("new", keys.keys["new"]) == 200
            fetched, started = keys.fetches, time.monotonic()
            for n in range(30):
                assert await status(f"bogus-{n}", keys.keys["new"]) == 401
            intervals = (time.monotonic() - started) / 0.5
            assert keys.fetches - fetched <= 1 + intervals  # one fetch per refresh interval


async def test_es256_tokens_verified_with_a_pem_key(
    backends_env: dict[str, str], user: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    env = {
        **backends_env,
        "GATEWAY_JWT_ALGORITHM": "ES256",
        "GATEWAY_JWT_PUBLIC_KEY": pem.decode().replace("\n", "\\n"),  # one line, as in a .env
    }
    async with serving_gateway(env) as url, httpx.AsyncClient(base_url=url) as http:
        good = token(key, "ES256", user)
        reply = await http.get("/v1/me/wallet", headers={"Authorization": f"Bearer {good}"})
        assert reply.status_code == 200, reply.text
        hs = jwt.encode({"sub": user, "exp": time.time() + 60}, "x" * 32, algorithm="HS256")
        reply = await http.get("/v1/me/wallet", headers={"Authorization": f"Bearer {hs}"})
        assert_error(reply, 401, "INVALID_TOKEN")


@pytest.fixture(scope="module")
async def http(backends_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    env = {**backends_env, "GATEWAY_MAX_BODY_BYTES": "65536", "GATEWAY_MAX_HEADER_BYTES": "8192"}
    hooks = {"request": [operator_keys]}
    async with (
        serving_gateway(env) as url,
        httpx.AsyncClient(base_url=url, timeout=10, event_hooks=hooks) as client,
    ):
        yield client


async def test_oversized_headers_and_bodies_are_refused(http: httpx.AsyncClient, user: str) -> None:
    headers = {**bearer(user), "X-Padding": "a" * 20_000}
    assert_error(await http.get("/v1/me/wallet", headers=headers), 431, "HEADERS_TOO_LARGE")
    big = b'{"order_amount": {"amount_minor": 100, "currency": "CNY"}, "pad": "' + b"x" * 100_000
    reply = await http.post(
        "/v1/checkout/quote",
        content=big + b'"}',
        headers={**bearer(user), "Content-Type": "application/json"},
    )
    assert_error(reply, 413, "BODY_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 10_000

    streamed = await http.post(
        "/v1/checkout/quote",
        content=chunks(),
        headers={**bearer(user), "Content-Type": "application/json"},
    )
    assert_error(streamed, 413, "BODY_TOO_LARGE")


async def test_a_client_that_sends_its_whole_body_first_reads_the_413(
    http: httpx.AsyncClient, user: str
) -> None:
    """Python's http.client writes all 10 MB before it reads: the gateway reads and discards
    them, so the client gets the answer, not a connection reset."""
    host, port = str(http.base_url.host), int(http.base_url.port or 80)

    def post() -> tuple[int, bytes]:
        connection = http_client.HTTPConnection(host, port, timeout=30)
        try:
            connection.request(
                "POST",
                "/v1/checkout/quote",
                body=b"x" * 10_000_000,
                headers={**bearer(user), "Content-Type": "application/json"},
            )
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    status, body = await asyncio.to_thread(post)
    assert status == 413 and json.loads(body)["reason"] == "BODY_TOO_LARGE"


async def test_the_token_is_checked_before_the_body_is_read(http: httpx.AsyncClient) -> None:
    reply = await http.post(
        "/v1/checkout/quote", content=b"{" * 50_000, headers={"Content-Type": "application/json"}
    )
    assert_error(reply, 401, "MISSING_TOKEN")  # not a parse error: the body was never read


async def test_identifiers_refuse_bidirectional_overrides(
    http: httpx.AsyncClient, user: str
) -> None:
    reply = await http.post(
        "/v1/checkout/apply",
        json={
            "order_id": "order-\u202e1",
            "order_amount": {"amount_minor": 100_000, "currency": "CNY"},
            "points": 100,
        },
        headers={**bearer(user), "Idempotency-Key": "bidi-1"},
    )
    error = assert_error(reply, 400, "INVALID_ARGUMENT")
    fields = [v["field"] for v in error["violations"]]
    assert fields == ["order_id"]


async def test_dead_letters_are_listed_per_service(http: httpx.AsyncClient) -> None:
    for service in ("rules", "mall"):
        reply = await http.get(
            "/v1/admin/dead-letters",
            params={"service": service, "status": "OPEN"},
            headers=bearer("operator", "admin"),
        )
        assert reply.status_code == 200, reply.text
        assert all(letter["status"] == "OPEN" for letter in reply.json().get("dead_letters", []))
    reply = await http.post(
        "/v1/admin/dead-letters/retry",
        json={"service": "mall", "user_id": "nobody", "letter_id": "1"},
        headers=bearer("operator", "admin"),
    )
    assert_error(reply, 404, "DEAD_LETTER_NOT_FOUND")


async def test_bodies_must_be_json(http: httpx.AsyncClient, user: str) -> None:
    reply = await http.post(
        "/v1/checkout/quote",
        content=b'{"order_amount": {"amount_minor": 100, "currency": "CNY"}}',
        headers=bearer(user),  # no Content-Type
    )
    assert_error(reply, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_a_key_reused_with_another_body_is_422(http: httpx.AsyncClient, user: str) -> None:
    headers = {**bearer(user), "Idempotency-Key": f"draw-{user}"}
    for lottery_id in ("edge-a", "edge-b"):
        await http.put(
            f"/v1/admin/lotteries/{lottery_id}",
            json={"title": "Edge", "points_per_draw": 1, "enabled": True, "no_prize_weight": 1},
            headers=bearer("operator", "admin"),
        )
    first = await http.post("/v1/me/lotteries/edge-a/draws", headers=headers)
    assert first.status_code == 422, first.text  # no points: a business refusal...
    again = await http.post("/v1/me/lotteries/edge-a/draws", headers=headers)
    assert again.json()["reason"] == first.json()["reason"]  # ...replayed as such
    other = await http.post("/v1/me/lotteries/edge-b/draws", headers=headers)
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")


async def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    backends_env: dict[str, str], rules: RulesStub, user: str
) -> None:
    """The client's address feeds risk: a spoofed X-Forwarded-For must not dodge a blacklist
    (nor frame someone else's address)."""
    await rules.AddBlacklistEntry(
        rpb.AddBlacklistEntryRequest(kind=rpb.BLACKLIST_KIND_IP, value="203.0.113.9", reason="t")
    )
    spoofed = {**bearer(user), "X-Forwarded-For": "203.0.113.9"}
    # Untrusted: the connection's own address (loopback) is used, which is not blacklisted (it
    # may be in REVIEW when many test users share it: anything but the blacklist's DENY).
    for trusted, denied in (("10.255.255.1", False), ("127.0.0.1", True)):
        env = {**backends_env, "FORWARDED_ALLOW_IPS": trusted}
        async with serving_gateway(env) as url, httpx.AsyncClient(base_url=url) as client:
            reply = await client.post(
                "/v1/me/check-in", headers={**spoofed, "Idempotency-Key": f"{trusted}-{user}"}
            )
        assert reply.status_code == 200, reply.text
        assert (reply.json()["decision"] == "DENY") is denied, reply.json()
