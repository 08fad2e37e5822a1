"""Which hosts and addresses an outbound call may reach: the check of the outbound HTTP
guard (``integrations.net``).

A host is refused when any address it resolves to is private, loopback, link-local,
multicast, reserved, unspecified or a cloud-metadata service — unless an operator allowed it
in ``settings.TOOL_ALLOWED_PRIVATE_NETWORKS`` (CIDRs or host names; metadata addresses only
when named themselves). ``check_host`` answers with the addresses to connect to, so that the
connection uses exactly the addresses that were checked (no second lookup to rebind).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import httpx2
from django.conf import settings

from integrations.tools.base import ToolError, ToolRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# Instance-metadata services hand out cloud credentials: refused even inside an allowed
# network, unless the operator names the address itself (a /32 or /128) or the host name.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
# NAT64 (RFC 6052) carries an IPv4 address in its last 32 bits.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")

_CLASSES = (
    ("is_loopback", "a loopback address"),
    ("is_unspecified", "the unspecified address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_reserved", "a reserved address"),
    ("is_private", "a private address"),
)


@dataclass(frozen=True)
class Allowlist:
    networks: tuple[IPNetwork, ...]
    hosts: frozenset[str]

    @classmethod
    def from_settings(cls) -> Allowlist:
        # Read on every call (it is a short list) so that a settings change applies at once.
        return cls.parse(getattr(settings, "TOOL_ALLOWED_PRIVATE_NETWORKS", []) or [])

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(normalize_host(entry))
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, host: str, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
        if address in METADATA_ADDRESSES:
            return any(
                network.num_addresses == 1 and address in network for network in self.networks
            )
        return host in self.hosts or any(address in network for network in self.networks)


def normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def host_matches(host: str, domains: Iterable[str]) -> bool:
    """``host`` is one of ``domains`` or a subdomain of one (``api.x.com`` matches ``x.com``,
    ``evilx.com`` does not)."""
    host = normalize_host(host)
    for domain in domains:
        domain = normalize_host(domain).removeprefix("*.").lstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a tool may not reach ``address`` by default, or None for a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 form of an IPv4 address reaches that IPv4 address: judge that one.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            if reason:
                return reason
    for attribute, label in _CLASSES:
        if getattr(address, attribute):
            return label
    if not address.is_global:  # shared address space (100.64/10), benchmarking...
        return "a non-public address"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # "No such name" will not change by trying again; a failing resolver may.
        permanent = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
        raise ToolError(
            f"Cannot resolve {host}: {exc.strerror or exc}", retryable=not permanent
        ) from None
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = cast(str, sockaddr[0])  # an IPv4 or IPv6 address: (host, port, ...)
        if address not in addresses:
            addresses.append(address)
    return addresses


def check_host(
    host: str, port: int, *, resolver: Resolver = resolve, allow_private: bool = False
) -> list[str]:
    """The addresses to connect to for ``host``; ``ToolRefused`` if any one of them is not
    allowed (a name with one private address among public ones is refused: the resolver
    could hand either to the connect). ``allow_private``: private networks are fine (an
    operator-configured target such as an n8n next door) — cloud metadata never is."""
    name = normalize_host(host)
    allowlist = Allowlist.from_settings()
    if not name:
        raise ToolRefused("The URL has no host.")
    if name in METADATA_HOSTS and name not in allowlist.hosts:
        raise ToolRefused(f"{host} is a cloud metadata service: tools may not call it.")
    addresses = resolver(name, port)
    if not addresses:
        raise ToolError(f"Cannot resolve {host}: no address.", retryable=True)
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        reason = forbidden_reason(address)
        if allow_private and reason and address not in METADATA_ADDRESSES:
            reason = None
        if reason and not allowlist.allows(name, address):
            shown = host if text == name else f"{host} resolves to {text}, which"
            raise ToolRefused(
                f"{shown} is {reason}: tools may not reach it "
                "(an operator can allow it in TOOL_ALLOWED_PRIVATE_NETWORKS)."
            )
    return addresses


def checked_url(url: str | httpx2.URL, allowed_domains: Sequence[str] | None = None) -> httpx2.URL:
    """``url`` parsed, if it may be requested at all (scheme, host, domain list)."""
    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, TypeError, ValueError) as exc:
        raise ToolRefused(f"Not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ToolRefused(f"Only http and https URLs are allowed, not {parsed.scheme or 'none'!r}.")
    if not parsed.host:
        raise ToolRefused("The URL has no host.")
    if parsed.userinfo:
        raise ToolRefused("URLs with a user name or password in them are not allowed.")
    if allowed_domains is not None and not host_matches(parsed.host, allowed_domains):
        raise ToolRefused(f"{parsed.host} is not one of this tool's allowed domains.")
    return parsed
