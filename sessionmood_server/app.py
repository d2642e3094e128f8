"""Application factory, the entry point for embedding: builds the ASGI app from
the routes of each concern (the API's from the operation table, then
``/openapi.json``, ``/metrics``, ``/docs`` and the pages beside the API), the
services that run beside the requests and one storage. Nothing happens at
import time: storage opens in the lifespan (``Lifespan``)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.convertors import register_url_convertor
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from sessionmood_client import __version__ as VERSION
from sessionmood_server.http.api import Api
from sessionmood_server.http.cors import CORS_RESPONSE_HEADERS, CORSMiddleware
from sessionmood_server.http.errors import EXCEPTION_HANDLERS, HTTPProblem, unexpected_error
from sessionmood_server.http.metrics import (
    KNOWN_METHODS,
    MetricsEndpoint,
    metrics_routes,
    route_template,
)
from sessionmood_server.http.openapi import openapi_routes
from sessionmood_server.http.reference import docs_routes
from sessionmood_server.http.request_id import CURRENT_SCOPE
from sessionmood_server.http.routes import CONVERTORS, Endpoint, FastRoute, api_routes, fast_routes
from sessionmood_server.http.site import DemoKeys, DemoShop, site_routes
from sessionmood_server.http.static import SecurityHeaders
from sessionmood_server.services.metrics import METRICS
from sessionmood_server.services.retention import RetentionPurger
from sessionmood_server.services.webhooks import DeliveryWorker
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage, open_storage

log = logging.getLogger("sessionmood")


class SessionMoodApp(Starlette):
    """Starlette, with a direct route for the requests that carry the load.

    ``POST /v1/sessions/{id}/events`` and ``GET /v1/sessions/{id}/mood`` (the
    operations marked ``fast`` in the operation table) are nearly every request
    a site sends. Through the full stack each one walks three middleware
    layers, the route table and as many ``send`` wrappers, about a quarter of
    its CPU time. Here they go straight to their handler, with the same error
    handling as the stack: ``HTTPProblem`` rendered, anything else a logged 500
    with a request id, and CORS headers when the request carries ``Origin``.
    Everything else, including HEAD and preflights, takes the ordinary path.
    ``tests/test_app.py`` checks both paths answer alike.
    """

    # method -> its fast routes; empty: every request takes the full stack.
    fast_routes: dict[str, list[FastRoute]] = {}

    def use_fast_routes(self, routes: list[FastRoute]) -> None:
        table: dict[str, list[FastRoute]] = {}
        for route in routes:
            table.setdefault(route.method, []).append(route)
        self.fast_routes = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # Each request runs in a task of its own: no reset needed.
        CURRENT_SCOPE.set(scope)
        started = time.perf_counter()
        method: str = scope["method"]
        candidates = self.fast_routes.get(method)
        if candidates:
            path: str = scope["path"]
            for route in candidates:
                # The same matches as the routes' greedy ``{session_id}``: the
                # id is everything between the prefix and the suffix.
                if (
                    len(path) >= route.shortest
                    and path.startswith(route.prefix)
                    and path.endswith(route.suffix)
                ):
                    value = path[len(route.prefix) : len(path) - len(route.suffix)]
                    status = await self._fast(
                        route.handler, route.param, value, scope, receive, send
                    )
                    METRICS.request(route.template, method, status, time.perf_counter() - started)
                    return
        sent = [500]  # what an exception that escapes everything becomes

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent[0] = message["status"]
            await send(message)

        try:
            await super().__call__(scope, receive, send_status)
        finally:
            METRICS.request(
                route_template(scope.get("route")),
                method if method in KNOWN_METHODS else "other",
                sent[0],
                time.perf_counter() - started,
            )

    async def _fast(
        self,
        handler: Endpoint,
        param: str,
        value: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> int:
        """Serve one request; returns its status."""
        scope["app"] = self
        scope["path_params"] = {param: value}
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except HTTPProblem as exc:
            response = exc.response()
        except Exception as exc:
            # Already carries the CORS headers; logged with its request id.
            response = await unexpected_error(request, exc)
            await response(scope, receive, send)
            return response.status_code
        for name, _ in scope["headers"]:
            if name == b"origin":
                response.headers.update(CORS_RESPONSE_HEADERS)
                break
        await response(scope, receive, send)
        return response.status_code


def create_app(
    settings: Settings | None = None, storage: Storage | None = None, *, fast_paths: bool = True
) -> Starlette:
    """Build the ASGI app. ``storage`` overrides the one named by ``settings.database_url``;
    ``fast_paths=False`` sends every request through the full Starlette stack."""
    settings = settings or Settings.from_env()
    store = storage or open_storage(settings.database_url)
    # Starlette's path convertors are process-wide: ours go in before any
    # route is built (again on every call: the same objects, so harmless).
    for name, convertor in CONVERTORS.items():
        register_url_convertor(name, convertor)
    api = Api(settings, store)
    metrics = MetricsEndpoint(api)
    demo = DemoShop() if settings.demo else None
    # Made anew at each start: a stopped delivery worker has closed its client.
    services = functools.partial(background_services, api, metrics)
    app = SessionMoodApp(
        routes=[
            *api_routes(api),
            *openapi_routes(VERSION),
            *metrics_routes(metrics),
            *docs_routes(),
            *site_routes(demo),
        ],
        middleware=[Middleware(CORSMiddleware), Middleware(SecurityHeaders)],
        lifespan=Lifespan(settings, store, services, demo),
        exception_handlers=EXCEPTION_HANDLERS,
    )
    # An API has no directory pages: /v1/sessions/ is a JSON 404, not a redirect.
    app.router.redirect_slashes = False
    if fast_paths:
        app.use_fast_routes(fast_routes(api))
    app.state.api = api
    app.state.settings = settings
    return app


class Service(Protocol):
    """Something that runs beside the requests, from the app's start to its stop."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


def background_services(api: Api, metrics: MetricsEndpoint) -> list[Service]:
    """One run's services, in the order they start and stop."""
    settings, store = api.settings, api.storage
    running: list[Service] = []
    if settings.webhooks_enabled:
        running.append(
            DeliveryWorker(
                store,
                allow_private=settings.allow_private_webhooks,
                retry_base_s=settings.webhook_retry_base_s,
                timeout_s=settings.webhook_timeout_s,
                per_endpoint=settings.webhook_concurrency,
                max_in_flight=settings.webhook_max_in_flight,
            )
        )
    if settings.purge_interval_s > 0:
        running.append(RetentionPurger(store, settings.purge_interval_s))
    return [*running, api.feed, metrics]


class Lifespan:
    """The app's life between start and stop: storage opens, the demo (if any)
    gets this run's tenant and keys, the services start; at the stop they stop
    in the same order, then storage closes."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        services: Callable[[], list[Service]],
        demo: DemoShop | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.services = services
        self.demo = demo

    @asynccontextmanager
    async def __call__(self, app: Starlette) -> AsyncIterator[None]:
        await self.storage.open()
        log.info("SessionMood %s storing in %s", VERSION, _redact(self.settings.database_url))
        if self.demo is not None:
            keys = await self.demo.open(self.storage, self.settings.demo_origins, time.time())
            app.state.demo_keys = {"sm": keys.secret, "pk": keys.publishable}
            print(_demo_banner(self.settings, keys), flush=True)
        started: list[Service] = []
        try:
            for service in self.services():
                service.start()
                started.append(service)
            yield
        finally:
            for service in started:
                await service.stop()
            await self.storage.close()


def _demo_banner(settings: Settings, keys: DemoKeys) -> str:
    """Where the demo is. Printed, never logged, and only for a local demo: the
    one secret this server ever prints. On any other address it would land in
    whatever collects the process's output."""
    base = settings.public_url.rstrip("/")
    if settings.demo_key_printed:
        dashboard = f"{base}/dashboard/#key={keys.secret}"
    else:
        dashboard = f"{base}/dashboard/ (its key is only printed when serving on 127.0.0.1)"
    return (
        f"\n  Demo shop:  {base}/demo/\n"
        f"  Dashboard:  {dashboard}\n"
        "  (new demo keys on every start; leave --demo out in production)\n"
    )


def _redact(url: str) -> str:
    """A database URL without its password (in the userinfo or the query), for logs."""
    parts = urlsplit(url)
    secret_params = {"password", "sslpassword"}
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if "@" not in parts.netloc and not any(k.lower() in secret_params for k, _ in pairs):
        return url  # nothing to hide (and sqlite:/// paths must stay as written)
    netloc = parts.netloc
    if "@" in netloc:
        creds, host = netloc.rsplit("@", 1)
        netloc = f"{creds.split(':', 1)[0]}:***@{host}"
    query = "&".join(f"{k}=***" if k.lower() in secret_params else f"{k}={v}" for k, v in pairs)
    return urlunsplit(parts._replace(netloc=netloc, query=query))
