"""Application factory, the entry point for embedding: builds the ASGI app from
the operation table, the services and one storage. Nothing happens at import
time: storage opens in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.convertors import register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from sessionmood_client import __version__ as VERSION
from sessionmood_server.http.api import Api
from sessionmood_server.http.cors import CORS_RESPONSE_HEADERS, CORSMiddleware
from sessionmood_server.http.errors import (
    HTTPProblem,
    http_error,
    http_problem,
    unexpected_error,
)
from sessionmood_server.http.metrics import (
    KNOWN_METHODS,
    MetricsEndpoint,
    metrics_routes,
    route_template,
)
from sessionmood_server.http.openapi import build_openapi
from sessionmood_server.http.reference import docs_routes
from sessionmood_server.http.request_id import CURRENT_SCOPE
from sessionmood_server.http.responses import NO_STORE, JSONResponse
from sessionmood_server.http.routes import CONVERTORS, Endpoint, FastRoute, api_routes, fast_routes
from sessionmood_server.http.static import CachedStaticFiles, SecurityHeaders
from sessionmood_server.keys import new_key
from sessionmood_server.services.metrics import METRICS
from sessionmood_server.services.retention import purge_expired
from sessionmood_server.services.webhooks import DeliveryWorker
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage, open_storage

log = logging.getLogger("sessionmood")
PACKAGE_DIR = Path(__file__).resolve().parent
ROOT_DIR = PACKAGE_DIR.parent


def _shipped(name: str, in_checkout: Path) -> Path:
    """A directory the wheel ships inside this package, mapped there from its
    place in the repository (``package-dir`` in pyproject.toml); in a checkout
    or an editable install, where the package is the repository's own
    directory, that place itself."""
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else in_checkout


STATIC_DIR = _shipped("static", ROOT_DIR / "static")
DEMO_DIR = _shipped("demo", ROOT_DIR / "examples" / "demo_site")
DASHBOARD_DIR = PACKAGE_DIR / "dashboard"


def _redirect(to: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return RedirectResponse(to)

    return endpoint


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
    openapi_doc = build_openapi(VERSION)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_doc)

    demo_keys: dict[str, str] = {}

    async def demo_page(request: Request) -> Response:
        """The demo shop, with this run's publishable key filled in."""
        rel = request.path_params["path"] or "index.html"
        if "\x00" in rel:  # the file system would raise, not answer "no such file"
            raise HTTPException(404)
        path = (DEMO_DIR / rel).resolve()
        if DEMO_DIR not in path.parents or not path.is_file():
            raise HTTPException(404)
        if path.suffix != ".html":
            return FileResponse(path)
        html = path.read_text().replace("{{SESSIONMOOD_PUBLISHABLE_KEY}}", demo_keys["pk"])
        return HTMLResponse(html, headers=NO_STORE)

    metrics = MetricsEndpoint(api)
    routes: list[BaseRoute] = [
        *api_routes(api),
        Route("/openapi.json", openapi, methods=["GET"]),
        *metrics_routes(metrics),
        *docs_routes(),
    ]
    if STATIC_DIR.is_dir():
        routes.append(Mount("/static", app=CachedStaticFiles(directory=STATIC_DIR), name="static"))
    if DASHBOARD_DIR.is_dir():
        routes += [
            Route("/dashboard", _redirect("/dashboard/"), methods=["GET"]),
            Mount("/dashboard", app=StaticFiles(directory=DASHBOARD_DIR, html=True)),
        ]
    if settings.demo and DEMO_DIR.is_dir():
        routes += [
            Route("/", _redirect("/demo/"), methods=["GET"]),
            Route("/demo", _redirect("/demo/"), methods=["GET"]),
            Route("/demo/{path:path}", demo_page, methods=["GET"]),
        ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        log.info("SessionMood %s storing in %s", VERSION, _redact(settings.database_url))
        if settings.demo:
            demo_keys["sm"], demo_keys["pk"] = new_key("secret"), new_key("publishable")
            await store.ensure_demo_tenant(
                demo_keys["sm"], demo_keys["pk"], settings.demo_origins, time.time()
            )
            app.state.demo_keys = dict(demo_keys)
            base = settings.public_url.rstrip("/")
            # Printed, never logged, and only for a local demo: the one secret
            # this server ever prints. On any other address it would land in
            # whatever collects the process's output.
            if settings.demo_key_printed:
                dashboard = f"{base}/dashboard/#key={demo_keys['sm']}"
            else:
                dashboard = f"{base}/dashboard/ (its key is only printed when serving on 127.0.0.1)"
            print(
                f"\n  Demo shop:  {base}/demo/\n"
                f"  Dashboard:  {dashboard}\n"
                "  (new demo keys on every start; leave --demo out in production)\n",
                flush=True,
            )
        background: list[Callable[[], Awaitable[None]]] = []
        if settings.webhooks_enabled:
            worker = DeliveryWorker(
                store,
                allow_private=settings.allow_private_webhooks,
                retry_base_s=settings.webhook_retry_base_s,
                timeout_s=settings.webhook_timeout_s,
                per_endpoint=settings.webhook_concurrency,
                max_in_flight=settings.webhook_max_in_flight,
            )
            worker.start()
            background.append(worker.stop)
        if settings.purge_interval_s > 0:
            purger = asyncio.create_task(_purge_forever(store, settings.purge_interval_s))
            background.append(lambda: _cancel(purger))
        api.feed.start()
        background.append(api.feed.stop)
        metrics.start()
        background.append(metrics.stop)
        try:
            yield
        finally:
            for stop in background:
                await stop()
            await store.close()

    middleware = [Middleware(CORSMiddleware), Middleware(SecurityHeaders)]
    app = SessionMoodApp(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HTTPProblem: http_problem,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    # An API has no directory pages: /v1/sessions/ is a JSON 404, not a redirect.
    app.router.redirect_slashes = False
    if fast_paths:
        app.use_fast_routes(fast_routes(api))
    app.state.api = api
    app.state.settings = settings
    return app


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _purge_forever(store: Storage, interval_s: float) -> None:
    """Retention: erase sessions past their plan's window, a chunk at a time."""
    while True:
        try:
            total = await purge_expired(store, time.time())
            if total:
                log.info("retention purge erased %d session(s)", total)
        except Exception:  # a failed pass is retried next period
            log.exception("retention purge failed")
        await asyncio.sleep(interval_s)


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
