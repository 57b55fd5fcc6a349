"""Which addresses a webhook may reach: the same check runs at subscribe time and before every
connection (services/webhooks/endpoints.py), so it is tested here on addresses alone."""

import ipaddress

import pytest

from services.webhooks.endpoints import allowed, embedded_ipv4

TEN = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a00:1",  # NAT64 local use
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of the metadata address
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo (its client is 192.0.2.45)
        "fec0::1",  # site-local
        "100::1",  # discard-only
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "2001:db8::1",
    ],
)
def test_refused_ipv6_forms(address: str) -> None:
    assert not allowed(ipaddress.ip_address(address), ())


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "2606:2800:220:1::1", "64:ff9b::5db8:d822", "2002:5db8:d822::1"]
)
def test_public_addresses_and_ipv6_forms_of_them_are_allowed(address: str) -> None:
    assert allowed(ipaddress.ip_address(address), ())


def test_an_allowed_network_is_allowed_in_every_spelling() -> None:
    for address in ("10.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::"):
        assert allowed(ipaddress.ip_address(address), TEN), address
    assert embedded_ipv4(ipaddress.IPv6Address("2002:a00:1::")) == [
        ipaddress.IPv4Address("10.0.0.1")
    ]
