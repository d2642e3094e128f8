"""Webhooks: payloads, signatures, SSRF checks and the delivery worker.

Flow: a batch that changes a session's mood writes one outbox row per matching
webhook in the batch's own transaction (storage). The worker here claims due
rows, POSTs them signed, and records each attempt: a 2xx is delivered; anything
else is retried with exponential backoff until 24 h after the change, then
marked failed. Claims are leases, so a worker that dies mid-delivery only
delays the row (at-least-once); only the oldest pending row of a (webhook,
session) is ever claimed, so each session's changes arrive in order.

One tenant's slow receivers cannot hold up another's deliveries: every attempt
has a deadline (``SESSIONMOOD_WEBHOOK_TIMEOUT_S``), each endpoint has at most
``SESSIONMOOD_WEBHOOK_CONCURRENCY`` attempts in flight (across every replica:
storage counts the leases), and the worker starts each delivery as soon as a
slot is free rather than waiting for a whole claimed batch. When the process
is at ``SESSIONMOOD_WEBHOOK_MAX_IN_FLIGHT``, storage hands the next free slot to
the tenant with the fewest attempts in flight.

Signature header: ``SessionMood-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import functools
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from sessionmood_client.types import WebhookEvent
from sessionmood_server.storage import DeliveryJob, Storage

log = logging.getLogger("sessionmood.webhooks")

SIGNATURE_HEADER = "SessionMood-Signature"
MAX_AGE_S = 24 * 3600
MAX_BACKOFF_S = 3600.0
# A claimed delivery is another worker's to retry after this long (at least
# twice the delivery deadline): only a worker that died leaves one unfinished.
LEASE_S = 60.0


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(8)


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def webhook_payload(
    change_id: int,
    session_id: str,
    previous: str,
    mood: str,
    confidence: float,
    signals: list[str],
    action: str,
    occurred_at: float,
) -> str:
    """The JSON body of a ``mood.changed`` delivery, built from the shared wire model
    (``id`` lets receivers drop the duplicates at-least-once delivery can make)."""
    event = WebhookEvent.model_validate(
        {
            "type": "mood.changed",
            "id": change_id,
            "session_id": session_id,
            "previous_mood": previous,
            "mood": mood,
            "confidence": confidence,
            "signals": signals,
            "suggested_action": action,
            "occurred_at": datetime.fromtimestamp(occurred_at, UTC),
        }
    )
    return event.model_dump_json()


def sign(payload: str, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff_s(attempts: int, base: float) -> float:
    """Delay before attempt ``attempts + 1``: base, 2·base, 4·base… capped at an hour."""
    return float(min(base * 2 ** max(0, attempts - 1), MAX_BACKOFF_S))


# -- SSRF -------------------------------------------------------------------------


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


# -- the worker -------------------------------------------------------------------


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


class DeliveryWorker:
    """Delivers the outbox. One per server process; replicas share the work via leases.

    ``timeout_s`` bounds each attempt as a whole (DNS, connect, send, status
    line); ``per_endpoint`` caps attempts in flight per webhook across every
    worker sharing the storage; ``max_in_flight`` caps this process's.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        allow_private: bool,
        retry_base_s: float,
        timeout_s: float = 10.0,
        per_endpoint: int = 4,
        max_in_flight: int = 100,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.storage = storage
        self.allow_private = allow_private
        self.retry_base_s = retry_base_s
        self.timeout_s = timeout_s
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        self.lease_s = max(LEASE_S, 2 * timeout_s)
        self.poll_s = poll_s
        self.clock = clock
        # No redirects: a receiver must not bounce the signed body elsewhere.
        # As many connections as deliveries in flight, so none waits for the pool.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=max_in_flight, max_keepalive_connections=min(20, max_in_flight)
            ),
            follow_redirects=False,
            transport=transport,
        )
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._resolver = TenantResolver()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sessionmood-webhooks")

    async def stop(self) -> None:
        """Stop claiming and abandon attempts in flight: their leases expire and
        another worker (or the next start) sends them again."""
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        # Whatever they ended with (cancelled, or a failure just logged) is over.
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()
        self._resolver.close()

    async def _run(self) -> None:
        while True:
            # Cleared before claiming: a delivery finishing from here on wakes
            # the wait below at once.
            self._slot_freed.clear()
            free = self.max_in_flight - len(self._in_flight)
            if free > 0:
                try:
                    jobs = await self.storage.claim_deliveries(
                        self.clock(), free, self.lease_s, self.per_endpoint
                    )
                except asyncio.CancelledError:
                    raise
                except Exception:  # keep delivering whatever one bad pass does
                    log.exception("webhook claim failed")
                    jobs = []
                for job in jobs:
                    task = asyncio.create_task(self._deliver(job), name=f"webhook-{job.id}")
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
            await self._wait_for_work()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()  # a slot, and maybe the session's next change, is free
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed to record", exc_info=task.exception())

    async def _wait_for_work(self) -> None:
        """Until a delivery finishes, a mood change is stored, or ``poll_s``
        passes (retries falling due, other replicas' leases expiring)."""
        waits = {
            asyncio.ensure_future(self._slot_freed.wait()),
            asyncio.ensure_future(self.storage.wait_for_mood_change(self.poll_s)),
        }
        try:
            await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _post(self, job: DeliveryJob) -> int:
        # DNS may have changed since the webhook was registered: vet it again
        # and connect to the very address that passed.
        vetted = await vet_webhook_url(
            job.url, self.allow_private, self._resolver.for_tenant(job.tenant_id)
        )
        url, headers, extensions = vetted.pinned()
        ts = int(self.clock())
        request = self._http.build_request(
            "POST",
            url,
            content=job.payload.encode(),
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": "SessionMood-Webhooks/1.0",
                SIGNATURE_HEADER: sign(job.payload, job.secret, ts),
            },
            extensions=extensions,
        )
        # Only the status matters: the body is never read, however large.
        response = await self._http.send(request, stream=True)
        await response.aclose()
        return response.status_code

    async def _deliver(self, job: DeliveryJob) -> None:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            # Bounded as a whole, not per read: a receiver that trickles its
            # answer must not hold its slot for longer than this.
            async with asyncio.timeout(self.timeout_s):
                status = await self._post(job)
            if not 200 <= status < 300:
                error = f"receiver answered {status}"
        except WebhookURLError as exc:
            error = f"refused: {exc}"
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency_ms = (time.perf_counter() - started) * 1000
        now = self.clock()
        next_at: float | None = None
        if error is not None:
            next_at = now + backoff_s(job.attempts + 1, self.retry_base_s)
            if next_at - job.created_at > MAX_AGE_S:
                next_at = None  # retried for 24 h: give up
            log.warning("webhook %s delivery %d failed: %s", job.webhook_id, job.id, error)
        await self.storage.finish_delivery(
            job.id,
            delivered=error is None,
            status_code=status,
            error=error,
            latency_ms=latency_ms,
            next_attempt_at=next_at,
            now=now,
        )
