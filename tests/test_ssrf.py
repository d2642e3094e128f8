"""Where webhooks may go: URL and address checks (SSRF), when a webhook is
created and again at every delivery."""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from sessionmood_server.records import Attempt
from sessionmood_server.services.ssrf import (
    ADDRESS_REFUSED,
    WebhookURLError,
    check_webhook_url,
    embedded_ipv4,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# Refused for what the URL says, whatever it resolves to: specific messages.
MALFORMED = [
    ("ftp://example.com/x", "http"),
    ("http://user:pw@127.0.0.1/x", "credentials"),
    ("http://[::1/x", "not a valid URL"),
    ("http://127.0.0.1:99999/x", "not a valid URL"),
    ("http:///x", "no host"),
]


@pytest.mark.parametrize(("url", "why"), MALFORMED)
def test_malformed_urls_are_refused(
    client: TestClient, growth: dict[str, str], url: str, why: str
) -> None:
    r = client.post("/v1/webhooks", json={"url": url}, headers=growth)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "Webhook URL refused" and r.json()["field"] == "url"
    assert why in r.json()["message"]


# Hosts that are, or resolve to, addresses no webhook may reach even with
# SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS=1: link-local and cloud metadata, "this
# network", multicast, broadcast, reserved, and IPv6 forms embedding any of them.
NEVER = [
    "0.0.0.0",
    "0",
    "0.0.0.1",
    "0.1.2.3",
    "169.254.169.254",
    "0xa9fea9fe",  # 169.254.169.254 in hex
    "2852039166",  # ... in decimal
    "0251.0376.0251.0376",  # ... in octal
    "169.254.0.1",
    "100.100.100.200",  # Alibaba Cloud metadata
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "[::]",
    "[fe80::1]",
    "[fe80::a9fe:a9fe]",
    "[fd00:ec2::254]",  # AWS metadata over IPv6
    "[fec0::1]",
    "[ff02::1]",
    "[100::1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[::ffff:255.255.255.255]",
    "[::ffff:0.0.0.0]",
    # IPv4 embedded in IPv6: judged by the IPv4 address
    "[64:ff9b::169.254.169.254]",  # NAT64
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b::255.255.255.255]",
    "[64:ff9b::224.0.0.1]",
    "[64:ff9b:1::a9fe:a9fe]",  # local-use NAT64
    "[64:ff9b:1:a9fe:a9:fe00::]",  # ... with a /48 prefix
    "[2002:a9fe:a9fe::1]",  # 6to4
    "[2002:ffff:ffff::]",
    "[::169.254.169.254]",  # IPv4-compatible
    "[::a9fe:a9fe]",
    "[::0.0.0.2]",
    "[::ffff:0:169.254.169.254]",  # IPv4-translated
    "[::ffff:0:a9fe:a9fe]",
    "[2001:0:a9fe:a9fe::1]",  # Teredo, server part
    "[2001:0:4136:e378:8000:63bf:5601:5601]",  # Teredo, client part (169.254.169.254 ^ ~0)
]

# Private, loopback or otherwise internal: refused unless the setting allows
# internal receivers.
PRIVATE = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0x7f.1",
    "0177.0.0.1",
    "0177.0000.0000.0001",
    "017700000001",
    "127.255.255.254",
    "localhost",
    "10.0.0.1",
    "10.255.255.255",
    "012.0.0.1",  # 10.0.0.1 in octal
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "0xc0a80101",
    "192.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:10.0.0.1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[2001:db8::1]",
    # IPv4 embedded in IPv6
    "[64:ff9b::127.0.0.1]",  # NAT64
    "[64:ff9b::7f00:1]",
    "[64:ff9b::10.0.0.1]",
    "[64:ff9b::c0a8:101]",
    "[2002:7f00:1::]",  # 6to4
    "[2002:a00:1::1]",
    "[2002:c0a8:101::1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[::7f00:1]",
    "[::10.0.0.1]",
    "[::ffff:0:127.0.0.1]",  # IPv4-translated
    "[::ffff:0:7f00:1]",
    "[::ffff:0:a00:1]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    "[2001:0:a00:1::f5ff:fffd]",  # Teredo, server 10.0.0.1, client 10.0.0.2
]
NOT_PUBLIC = ["100.64.0.1", "[64:ff9b::100.64.0.1]"]  # shared (CGNAT): never a receiver here


@pytest.mark.parametrize("host", NEVER + PRIVATE + NOT_PUBLIC)
def test_internal_addresses_are_refused_with_a_generic_message(
    client: TestClient, growth: dict[str, str], host: str
) -> None:
    r = client.post("/v1/webhooks", json={"url": f"http://{host}:8080/x"}, headers=growth)
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["error"], body["field"]) == ("Webhook URL refused", "url")
    # The same words whatever the address: nothing about what the host is.
    assert body["message"] == ADDRESS_REFUSED


@pytest.mark.parametrize("host", NEVER + NOT_PUBLIC)
@pytest.mark.anyio
async def test_never_allowed_even_with_private_webhooks_on(host: str) -> None:
    with pytest.raises(WebhookURLError) as refused:
        await check_webhook_url(f"http://{host}/x", allow_private=True)
    assert str(refused.value) == ADDRESS_REFUSED


@pytest.mark.parametrize("host", PRIVATE)
@pytest.mark.anyio
async def test_internal_addresses_allowed_by_the_setting(host: str) -> None:
    assert await check_webhook_url(f"http://{host}:9/x", allow_private=True)


@pytest.mark.parametrize(
    "host",
    [
        "8.8.8.8",
        "[2606:4700:4700::1111]",
        "[::ffff:8.8.8.8]",
        "[64:ff9b::8.8.8.8]",
        "[2002:808:808::1]",
        "[::ffff:0:8.8.8.8]",
        "[2001:0:808:808:8000:63bf:f7f7:f7f7]",  # Teredo: server and client 8.8.8.8
    ],
)
@pytest.mark.anyio
async def test_public_addresses_embedded_in_ipv6_are_public(host: str) -> None:
    assert await check_webhook_url(f"https://{host}/x", allow_private=False)


def test_embedded_ipv4_addresses_are_found() -> None:
    def found(ip: str) -> list[str]:
        return [str(v4) for v4 in embedded_ipv4(ipaddress.IPv6Address(ip))]

    assert found("64:ff9b::7f00:1") == ["127.0.0.1"]
    assert found("::ffff:0:a9fe:a9fe") == ["169.254.169.254"]
    assert found("::ffff:10.1.2.3") == ["10.1.2.3"]
    assert found("::10.1.2.3") == ["10.1.2.3"]
    assert found("2002:c0a8:101::1") == ["192.168.1.1"]
    assert found("2001:0:4136:e378:8000:63bf:80ff:fffe") == ["65.54.227.120", "127.0.0.1"]
    # RFC 6052 examples of 192.0.2.33 under 2001:db8:122::/48, /56, /64, as they
    # would look under the local-use prefix; every reading is judged.
    assert "192.0.2.33" in found("64:ff9b:1:c000:2:2100::")  # /48
    assert "192.0.2.33" in found("64:ff9b:1:c0:0:221::")  # /56
    assert "192.0.2.33" in found("64:ff9b:1:0:c0:2:2100::")  # /64
    assert "192.0.2.33" in found("64:ff9b:1::c000:221")  # /96
    assert found("::1") == found("::") == found("2606:4700::1111") == []


@pytest.mark.anyio
async def test_names_are_refused_without_saying_what_they_resolve_to() -> None:
    messages = set()
    for url in ("http://localhost:9/x", "http://no-such-host.invalid/x", "http://[::1]/x"):
        with pytest.raises(WebhookURLError) as refused:
            await check_webhook_url(url, allow_private=False)
        messages.add(str(refused.value))
    assert messages == {ADDRESS_REFUSED}
    assert "127.0.0.1" not in ADDRESS_REFUSED and "::1" not in ADDRESS_REFUSED


@pytest.mark.anyio
async def test_private_allowed_with_setting_but_never_link_local() -> None:
    assert await check_webhook_url("http://127.0.0.1:9/x", allow_private=True)
    with pytest.raises(WebhookURLError):
        await check_webhook_url("http://169.254.169.254/x", allow_private=True)


@pytest.mark.parametrize(
    ("host", "allow_private"),
    [("[::ffff:0:7f00:1]", False), ("[64:ff9b::7f00:1]", False), ("[2002:a9fe:a9fe::]", True)],
)
@pytest.mark.anyio
async def test_delivery_refuses_embedded_forms_too(host: str, allow_private: bool) -> None:
    """Checked again at every delivery, not only when the webhook was created."""
    from sessionmood_server.records import DeliveryJob
    from sessionmood_server.services.webhooks import DeliveryWorker

    finished: dict[str, Any] = {}

    class Store:
        async def finish_delivery(self, attempt: Attempt) -> None:
            finished.update(dataclasses.asdict(attempt))

    worker = DeliveryWorker(Store(), allow_private=allow_private, retry_base_s=1)  # type: ignore[arg-type]
    job = DeliveryJob(1, "wh_x", f"http://{host}:9/h", "whsec_" + "00" * 24, "{}", 0, time.time())
    try:
        await worker._deliver(job)
    finally:
        await worker.stop()
    assert finished["delivered"] is False and finished["status_code"] is None
    assert finished["error"] == f"refused: {ADDRESS_REFUSED}"


@pytest.mark.parametrize("ip", ["100.100.100.200", "fd00:ec2::254", "169.254.169.254"])
@pytest.mark.anyio
async def test_metadata_addresses_are_refused_even_when_private_is_allowed(ip: str) -> None:
    host = f"[{ip}]" if ":" in ip else ip
    with pytest.raises(WebhookURLError):
        await check_webhook_url(f"http://{host}/x", allow_private=True)


@pytest.mark.anyio
async def test_shared_address_space_is_not_public() -> None:
    with pytest.raises(WebhookURLError):
        await check_webhook_url("http://100.64.1.2/x", allow_private=False)
