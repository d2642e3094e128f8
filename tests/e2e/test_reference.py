"""``/docs``: the API reference in a real Chromium. Swagger UI renders the
operations of ``/openapi.json`` and the webhook, from files this server serves:
no request leaves it, and the page breaks none of its CSP."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from sessionmood_server.http.openapi import build_openapi
from tests.conftest import LiveServer


def test_the_reference_renders_every_operation_from_this_server_only(
    page: Page, live_server: LiveServer
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(live_server.base_url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("SessionMood API")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    doc = build_openapi("x")
    paths = set(doc["paths"])
    shown = set(operations.all_inner_texts())
    # Swagger UI may break long paths with zero-width spaces.
    shown = {p.replace("\u200b", "") for p in shown}
    assert paths <= shown, paths - shown
    count = sum(len(ops) for ops in doc["paths"].values())
    assert operations.count() == count + len(doc["webhooks"])  # the webhook is listed too
    expect(page.locator(".opblock-summary-path", has_text="mood.changed")).to_have_count(1)
    origin = urlsplit(live_server.base_url).netloc
    outside = [u for u in requested if urlsplit(u).netloc not in {origin, ""}]
    assert outside == [] and any(u.endswith("/openapi.json") for u in requested)
    assert problems == []


def test_the_dashboard_links_to_the_reference(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.base_url + "/dashboard/")
    link = page.locator("[data-api-reference]")
    expect(link).to_have_attribute("href", "/docs/")
    link.click()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("SessionMood API")
