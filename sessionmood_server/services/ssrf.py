"""Where webhooks may go: URL and address checks (SSRF), and the per-tenant DNS
look-ups deliveries use.

A webhook URL is checked when it is created and again at every delivery, with
the addresses its host resolves to then; delivery connects to the very address
that passed (``VettedURL.pinned``), so DNS cannot answer differently in between.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class WebhookURLError(ValueError):
    """The URL may not receive webhooks; the message says why."""


# One message for every refusal that depends on what the host resolved to (or
# whether it resolved at all): telling them apart would let a tenant map
# internal DNS through the error ("db.internal resolves, to something private").
ADDRESS_REFUSED = (
    "the host must resolve to public addresses only "
    "(SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS=1 also allows private and loopback ones; "
    "link-local, cloud metadata, multicast, broadcast and reserved addresses never)"
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata endpoints: never a receiver, whatever the settings. Most are
# link-local; these are not.
_METADATA = {
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
    ipaddress.ip_address("fd00:ec2::23"),  # AWS IPv6 DNS
}
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # 0.0.0.0 reaches the local host on Linux
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
# IPv6 forms that carry an IPv4 address: a packet to one of them reaches (or,
# through a translator or tunnel relay, is delivered to) that IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use prefixes
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (RFC 2765)
_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (deprecated, RFC 4291)


def _rfc6052_ipv4(n: int, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address in an RFC 6052 IPv6 address with a 32-64 bit prefix:
    32 address bits right after the prefix, skipping bits 64-71 (the u octet)."""
    window = n >> (128 - prefix_length - 40) & (1 << 40) - 1  # address bits plus the u octet
    before_u = 64 - prefix_length
    after_u = 32 - before_u
    high = window >> (40 - before_u)
    return ipaddress.IPv4Address(high << after_u | window & (1 << after_u) - 1)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address embeds: IPv4-mapped and -translated,
    IPv4-compatible, NAT64 (well-known and local-use prefixes), 6to4 and Teredo
    (server and client). Empty for an ordinary IPv6 address."""
    n = int(ip)
    low32 = ipaddress.IPv4Address(n & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _NAT64 or ip in _V4_TRANSLATED or (ip in _V4_COMPATIBLE and n > 1):  # not ::, ::1
        found.append(low32)
    if ip in _NAT64_LOCAL:
        # The operator picks the prefix length inside the /48 (RFC 6052 section
        # 2.2): any of them may be in use, so every reading counts.
        found += [_rfc6052_ipv4(n, length) for length in (48, 56, 64)]
        found.append(low32)  # a /96 prefix
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


class Reach(enum.IntEnum):
    """Who may send webhooks to an address, from most to least open."""

    PUBLIC = 0
    PRIVATE = 1  # only with SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS=1
    NEVER = 2


def _ipv4_reach(ip: ipaddress.IPv4Address) -> Reach:
    # Link-local covers cloud metadata (169.254.169.254). Reserved (240/4)
    # includes the broadcast address, which is also "private" to Python.
    if ip.is_link_local or ip in _METADATA or ip.is_multicast or ip.is_reserved:
        return Reach.NEVER
    if ip in _THIS_NETWORK or ip == _BROADCAST:
        return Reach.NEVER
    if ip.is_global:
        return Reach.PUBLIC
    return Reach.PRIVATE if ip.is_private or ip.is_loopback else Reach.NEVER


def address_reach(ip: IPAddress) -> Reach:
    """Who may send webhooks to ``ip``.

    An IPv6 address that embeds IPv4 addresses is judged by the worst of them,
    whatever Python's tables say about the IPv6 range itself (they differ
    between patch releases): ``[::ffff:0:7f00:1]`` is loopback, ``[64:ff9b::a9fe:a9fe]``
    is cloud metadata through NAT64.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_reach(ip)
    embedded = embedded_ipv4(ip)
    if embedded:
        worst = max(_ipv4_reach(v4) for v4 in embedded)
        # Local-use NAT64 prefixes are never globally routed.
        return max(worst, Reach.PRIVATE) if ip in _NAT64_LOCAL else worst
    if ip.is_loopback:  # ::1, which Python also counts as reserved
        return Reach.PRIVATE
    if ip.is_link_local or ip in _METADATA or ip.is_multicast or ip.is_unspecified:
        return Reach.NEVER
    if ip.is_site_local or ip.is_reserved:
        return Reach.NEVER
    if ip.is_global:
        return Reach.PUBLIC
    return Reach.PRIVATE if ip.is_private or ip.is_loopback else Reach.NEVER


def address_allowed(ip: IPAddress, allow_private: bool) -> bool:
    """May a webhook be delivered to ``ip``?"""
    verdict = address_reach(ip)
    return verdict == Reach.PUBLIC or (verdict == Reach.PRIVATE and allow_private)


@dataclass(frozen=True, slots=True)
class VettedURL:
    """A webhook URL and the address it was checked at: delivery connects to
    exactly that address, so DNS cannot answer differently in between (rebinding)."""

    url: str
    host: str
    port: int
    ip: str

    def pinned(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(URL with the IP as host, headers, httpx extensions) for the request."""
        parts = urlsplit(self.url)
        ip_host = f"[{self.ip}]" if ":" in self.ip else self.ip
        default = 443 if parts.scheme == "https" else 80
        netloc = ip_host if self.port == default else f"{ip_host}:{self.port}"
        host_header = self.host if self.port == default else f"{self.host}:{self.port}"
        extensions: dict[str, Any] = {}
        if parts.scheme == "https":
            # TLS still verifies the certificate against the real host name.
            extensions["sni_hostname"] = self.host
        return urlunsplit(parts._replace(netloc=netloc)), {"Host": host_header}, extensions


Resolve = Callable[[str, int], Awaitable[list[str]]]


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def vet_webhook_url(
    url: str, allow_private: bool, resolve: Resolve | None = None
) -> VettedURL:
    """Validate ``url`` and every address it resolves to now (with ``resolve``,
    default the event loop's getaddrinfo)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookURLError("not a valid URL (check the host and port)") from None
    if parts.scheme not in {"http", "https"}:
        raise WebhookURLError("webhook URLs must start with http:// or https://")
    if not parts.hostname:
        raise WebhookURLError("webhook URL has no host")
    if parts.username or parts.password:
        raise WebhookURLError("webhook URLs must not carry credentials")
    try:
        # An address needs no look-up (and no thread to wait for).
        addresses = [str(ipaddress.ip_address(parts.hostname))]
    except ValueError:
        try:
            addresses = await (resolve or _getaddrinfo)(parts.hostname, port)
        except (OSError, UnicodeError, ValueError):
            raise WebhookURLError(ADDRESS_REFUSED) from None
    addresses = [a.split("%", 1)[0] for a in addresses]
    # Every address must pass, not just the first: a name resolving to a public
    # and a private address would otherwise reach the private one half the time.
    if not addresses or not all(
        address_allowed(ipaddress.ip_address(a), allow_private) for a in addresses
    ):
        raise WebhookURLError(ADDRESS_REFUSED)
    return VettedURL(parts.geturl(), parts.hostname, port, addresses[0])


async def check_webhook_url(url: str, allow_private: bool) -> str:
    """Validate ``url`` and what it resolves to now; returns the normalised URL."""
    return (await vet_webhook_url(url, allow_private)).url


class TenantResolver:
    """DNS look-ups for deliveries on threads of their own, at most
    ``per_tenant`` running at once for any tenant.

    A look-up blocks a thread until the name server answers, and a deadline
    cannot stop the thread: a tenant whose hosts' name servers never answer
    would otherwise fill every thread (the event loop's default executor has
    six on two cores) and stall everyone's look-ups, whatever their deadline.
    A tenant's slot is released when its thread is done, not when the
    delivery gives up waiting, so it never holds more than ``per_tenant``.
    """

    def __init__(self, threads: int = 16, per_tenant: int = 2) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="sessionmood-webhook-dns"
        )
        self._per_tenant = per_tenant
        self._running: dict[int, int] = {}  # tenant -> look-ups on a thread now
        self._freed = asyncio.Event()

    def for_tenant(self, tenant_id: int) -> Resolve:
        return functools.partial(self.resolve, tenant_id)

    async def resolve(self, tenant_id: int, host: str, port: int) -> list[str]:
        while self._running.get(tenant_id, 0) >= self._per_tenant:
            self._freed.clear()
            await self._freed.wait()
        self._running[tenant_id] = self._running.get(tenant_id, 0) + 1
        loop = asyncio.get_running_loop()

        def done(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._release, tenant_id)

        job = self._pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        job.add_done_callback(done)
        answer = asyncio.wrap_future(job)
        # Read even when nobody waits any more, so a late failure is not reported
        # as "never retrieved".
        answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        # Shielded: giving up on the answer must not pretend the thread is free.
        infos = await asyncio.shield(answer)
        return [str(info[4][0]) for info in infos]

    def _release(self, tenant_id: int) -> None:
        left = self._running[tenant_id] - 1
        if left:
            self._running[tenant_id] = left
        else:
            del self._running[tenant_id]
        self._freed.set()

    def close(self) -> None:
        # Threads stuck in a look-up are left to finish on their own.
        self._pool.shutdown(wait=False, cancel_futures=True)
