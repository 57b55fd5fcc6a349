"""Where a webhook may be sent: a guard against server-side request forgery.

An endpoint's host must resolve only to public addresses, unless an operator allowed the
network (WEBHOOKS_ALLOWED_NETWORKS). The check runs when a subscription is saved and again
before every attempt, on the addresses the attempt then connects to (`Target`), so a name
that later resolves elsewhere (DNS rebinding) is refused too. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.webhooks.config import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(ValueError):
    """The URL may not be used; the message says why (for the operator)."""


@dataclass(frozen=True)
class Target:
    """An attempt's destination: the URL as configured and the address to connect to."""

    url: str
    host: str
    address: Address


def check_url(url: str) -> tuple[str, int]:
    """The host and port of a well-formed http(s) URL without credentials or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise EndpointRefused("is not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EndpointRefused("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise EndpointRefused("must not carry credentials")
    if parts.fragment:
        raise EndpointRefused("must not have a fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise EndpointRefused("has an invalid port") from None
    return parts.hostname, port


# NAT64's well-known prefix carries the IPv4 address in its last 32 bits (RFC 6052); the
# local-use prefix 64:ff9b:1::/48 is refused whole (it is not global).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d (also :: and ::1)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches in the end: mapped (::ffff:a.b.c.d),
    IPv4-compatible (::a.b.c.d), 6to4 (2002::/16), Teredo (2001::/32: server and client) and
    NAT64 (64:ff9b::/96)."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    found += list(address.teredo or ())
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        found.append(low32)
    return found


def allowed(address: Address, networks: tuple[Network, ...]) -> bool:
    """Public, or in a network the operator allowed; an IPv6 address that carries an IPv4 one
    is judged by what it carries, so no IPv6 spelling reaches a refused IPv4 address."""
    if any(address in network for network in networks):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        carried = embedded_ipv4(address)
        if carried:
            return all(allowed(v4, networks) for v4 in carried)
        if address.is_site_local:  # deprecated fec0::/10, which is_global still calls global
            return False
    return address.is_global and not address.is_multicast and not address.is_reserved


async def resolve(url: str, networks: tuple[Network, ...]) -> Target:
    """Resolve the URL's host and check every address it resolves to."""
    host, port = check_url(url)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, ValueError, UnicodeError) as exc:
            raise EndpointRefused(f"its host does not resolve ({exc})") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    refused = [a for a in addresses if not allowed(a, networks)]
    if refused or not addresses:
        raise EndpointRefused(
            f"resolves to {refused[0] if refused else 'nothing'}: loopback, private, link-local "
            "and reserved addresses are refused unless WEBHOOKS_ALLOWED_NETWORKS allows them"
        )
    return Target(url, host, addresses[0])
