"""Application factory. Nothing happens at import time: storage opens in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import hashlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionmood_server.cors import CORS_RESPONSE_HEADERS, CORSMiddleware
from sessionmood_server.errors import ApiError, JSONResponse
from sessionmood_server.keys import new_key
from sessionmood_server.openapi import build_openapi
from sessionmood_server.routes import VERSION, Api
from sessionmood_server.services.retention import purge_expired
from sessionmood_server.services.webhooks import DeliveryWorker
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage, open_storage

log = logging.getLogger("sessionmood")
ROOT_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = ROOT_DIR / "static"
DEMO_DIR = ROOT_DIR / "examples" / "demo_site"
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"


class _AnyText(Convertor[str]):
    """Like ``{x:path}``, but also across newlines."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("session_id", _AnyText())

Endpoint = Callable[[Request], Awaitable[Response]]


def _route(path: str, **handlers: Endpoint) -> Route:
    """One route for several methods, so a 405 on the path names all of them."""

    async def endpoint(request: Request) -> Response:
        # Starlette answers HEAD with the GET endpoint; so do we.
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, endpoint, methods=list(handlers))


def _redirect(to: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return RedirectResponse(to)

    return endpoint


_GZIP_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


class CachedStaticFiles(StaticFiles):
    """Static files with ETag, a short public cache (a tracker update reaches sites
    within minutes; repeat views revalidate cheaply) and gzip for text assets, so
    tracker.js travels at its gzipped size without a reverse proxy."""

    _gzipped: dict[tuple[str, float], tuple[bytes, str]] = {}

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        headers = Headers(scope=scope)
        path = str(full_path)
        media = _GZIP_TYPES.get(os.path.splitext(path)[1])
        if media is not None and "gzip" in headers.get("accept-encoding", ""):
            key = (path, stat_result.st_mtime)
            if key not in self._gzipped:
                raw = Path(path).read_bytes()
                etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '-gz"'
                self._gzipped[key] = (gzip.compress(raw, 9, mtime=0), etag)
            body, etag = self._gzipped[key]
            common = {
                "ETag": etag,
                "Cache-Control": "public, max-age=300",
                "Vary": "Accept-Encoding",
            }
            if etag in headers.get("if-none-match", ""):
                return Response(status_code=304, headers=common)
            return Response(
                body,
                status_code=status_code,
                headers={**common, "Content-Encoding": "gzip"},
                media_type=media,
            )
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["Vary"] = "Accept-Encoding"
        return response


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and "\x00" in request.scope["path"]:
        # No file or route has NUL in its name: say what is wrong with the URL
        # (routes with parameters of their own name the parameter instead).
        return JSONResponse(
            {"error": "Invalid path", "message": "URL paths must not contain NUL (%00)"},
            status_code=400,
        )
    body: dict[str, Any] = {"error": HTTPStatus(exc.status_code).phrase}
    if exc.status_code == 404:
        body["message"] = f"no route for {request.url.path}"
    elif exc.status_code == 405:
        body["message"] = f"{request.method} is not allowed on {request.url.path}"
    elif exc.detail and exc.detail != body["error"]:
        body["message"] = exc.detail
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = "req_" + secrets.token_hex(6)
    # The traceback goes to the log with the id; the client gets only the id.
    log.error(
        "unhandled error %s on %s %s",
        request_id,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    headers = {"X-Request-Id": request_id}
    if "origin" in request.headers:
        # Starlette answers 500s outside the middleware stack, so the CORS
        # middleware never sees them: without this a browser reports a network
        # error instead of this body.
        headers.update(CORS_RESPONSE_HEADERS)
    return JSONResponse(
        {"error": "Internal Server Error", "request_id": request_id},
        status_code=500,
        headers=headers,
    )


_SESSIONS = "/v1/sessions/"
GC_YOUNG_THRESHOLD = 50_000

# HTML pages (dashboard, demo shop) load scripts, styles and images from this
# server only, talk to it only, and may not be framed (the dashboard holds a
# secret key: no clickjacking).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HTML_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for older browsers
    (b"referrer-policy", b"no-referrer"),
]
_NOSNIFF = (b"x-content-type-options", b"nosniff")


class SecurityHeaders:
    """``nosniff`` on everything served through the stack, and CSP, framing and
    referrer rules on HTML pages. (The two hot API routes answer JSON only and
    do not pass through here.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append(_NOSNIFF)
                for name, value in headers:
                    if name.lower() == b"content-type" and value.startswith(b"text/html"):
                        headers += _HTML_HEADERS
                        break
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SessionMoodApp(Starlette):
    """Starlette, with a direct route for the two requests that carry the load.

    ``POST /v1/sessions/{id}/events`` and ``GET /v1/sessions/{id}/mood`` are
    nearly every request a site sends. Through the full stack each one walks
    three middleware layers, the route table and as many ``send`` wrappers,
    about a quarter of its CPU time. Here they go straight to their handler,
    with the same error handling as the stack: ``ApiError`` rendered, anything
    else a logged 500 with a request id, and CORS headers when the request
    carries ``Origin``. Everything else, including HEAD and preflights, takes
    the ordinary path. ``tests/test_app.py`` checks both paths answer alike.
    """

    fast_handlers: tuple[Endpoint, Endpoint] | None = None  # (POST events, GET mood)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_handlers
        if fast is not None and scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(_SESSIONS):
                method = scope["method"]
                # The same matches as the routes' greedy ``{session_id}``: the
                # id is everything between the prefix and the last suffix.
                if method == "POST" and path.endswith("/events") and len(path) >= 20:
                    await self._fast(fast[0], path[13:-7], scope, receive, send)
                    return
                if method == "GET" and path.endswith("/mood") and len(path) >= 18:
                    await self._fast(fast[1], path[13:-5], scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    async def _fast(
        self, handler: Endpoint, session_id: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["app"] = self
        scope["path_params"] = {"session_id": session_id}
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except Exception as exc:
            # Already carries the CORS headers; logged with its request id.
            await (await _unexpected(request, exc))(scope, receive, send)
            return
        for name, _ in scope["headers"]:
            if name == b"origin":
                response.headers.update(CORS_RESPONSE_HEADERS)
                break
        await response(scope, receive, send)


def create_app(
    settings: Settings | None = None, storage: Storage | None = None, *, fast_paths: bool = True
) -> Starlette:
    """Build the ASGI app. ``storage`` overrides the one named by ``settings.database_url``;
    ``fast_paths=False`` sends every request through the full Starlette stack."""
    settings = settings or Settings.from_env()
    store = storage or open_storage(settings.database_url)
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
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    # Session ids are opaque: URL-encoded slashes and even newlines must
    # round-trip, so the id matches anything; the fixed suffix tells routes apart.
    sid = "/v1/sessions/{session_id:session_id}"
    routes: list[BaseRoute] = [
        # Hot paths first: Starlette tries routes in order. One route per path
        # and several methods, so a 405 names every allowed method.
        _route(sid + "/events", POST=api.post_events, GET=api.export_events),
        Route(sid + "/mood", api.get_mood, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/v1/keys/generate", api.generate_key, methods=["POST"]),
        Route("/v1/keys/publishable", api.create_publishable_key, methods=["POST"]),
        Route("/v1/analytics/moods", api.analytics_moods, methods=["GET"]),
        Route("/v1/analytics/pages", api.analytics_pages, methods=["GET"]),
        Route("/v1/analytics/actions", api.analytics_actions, methods=["GET"]),
        Route("/v1/stream/moods", api.stream_moods, methods=["GET"]),
        Route("/v1/usage", api.usage, methods=["GET"]),
        _route("/v1/webhooks", POST=api.create_webhook, GET=api.list_webhooks),
        Route("/v1/webhooks/{webhook_id}", api.delete_webhook, methods=["DELETE"]),
        Route("/v1/webhooks/{webhook_id}/deliveries", api.list_deliveries, methods=["GET"]),
        Route(sid + "/feedback", api.post_feedback, methods=["POST"]),
        Route(sid, api.delete_session, methods=["DELETE"]),
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
        # Everything loaded so far (modules, pydantic schemas, routes) lives as
        # long as the process: keep the cyclic GC from re-walking it in every
        # full collection, which would otherwise pause requests for milliseconds.
        gc.collect()
        gc.freeze()
        # Python's default collects the youngest generation every 700 new
        # objects. A request allocates ~100 (events, models, futures) and
        # dozens are in flight, so under load each of those collections walks
        # thousands of live request objects, several times per request: a
        # tenth of the CPU. Nearly all of them die by refcount anyway; collect
        # every GC_YOUNG_THRESHOLD objects instead (a few MB at most).
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
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
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    # An API has no directory pages: /v1/sessions/ is a JSON 404, not a redirect.
    app.router.redirect_slashes = False
    if fast_paths:
        app.fast_handlers = (api.post_events, api.get_mood)
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
