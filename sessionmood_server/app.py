"""Application factory. Nothing happens at import time: storage opens in the lifespan."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sessionmood_server.cors import CORSMiddleware
from sessionmood_server.errors import ApiError, JSONResponse
from sessionmood_server.keys import new_key
from sessionmood_server.openapi import build_openapi
from sessionmood_server.routes import VERSION, Api
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage, open_storage

log = logging.getLogger("sessionmood")
ROOT_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = ROOT_DIR / "static"
DEMO_DIR = ROOT_DIR / "examples" / "demo_site"
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"


def _redirect(to: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return RedirectResponse(to)

    return endpoint


class CachedStaticFiles(StaticFiles):
    """Static files with ETag (from Starlette) plus a short public cache, so
    a tracker update reaches sites within minutes while repeat views revalidate cheaply."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
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
    return JSONResponse(
        {"error": "Internal Server Error", "request_id": request_id},
        status_code=500,
        headers={"X-Request-Id": request_id},
    )


def create_app(settings: Settings | None = None, storage: Storage | None = None) -> Starlette:
    """Build the ASGI app. ``storage`` overrides the one named by ``settings.database_url``."""
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
        path = (DEMO_DIR / rel).resolve()
        if DEMO_DIR not in path.parents or not path.is_file():
            raise HTTPException(404)
        if path.suffix != ".html":
            return FileResponse(path)
        html = path.read_text().replace("{{SESSIONMOOD_PUBLISHABLE_KEY}}", demo_keys["pk"])
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    sid = "/v1/sessions/{session_id:path}"
    routes: list[BaseRoute] = [
        Route("/health", api.health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/v1/keys/generate", api.generate_key, methods=["POST"]),
        Route("/v1/keys/publishable", api.create_publishable_key, methods=["POST"]),
        Route("/v1/analytics/moods", api.analytics_moods, methods=["GET"]),
        Route("/v1/analytics/pages", api.analytics_pages, methods=["GET"]),
        Route("/v1/analytics/actions", api.analytics_actions, methods=["GET"]),
        Route("/v1/stream/moods", api.stream_moods, methods=["GET"]),
        Route("/v1/usage", api.usage, methods=["GET"]),
        # {session_id:path} so that URL-encoded slashes in ids round-trip; the
        # fixed suffix tells the routes apart.
        Route(sid + "/events", api.post_events, methods=["POST"]),
        Route(sid + "/events", api.export_events, methods=["GET"]),
        Route(sid + "/mood", api.get_mood, methods=["GET"]),
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
            # Printed, never logged: this is the one place the demo keys are shown.
            print(
                f"\n  Demo shop:  {base}/demo/\n"
                f"  Dashboard:  {base}/dashboard/#key={demo_keys['sm']}\n"
                "  (new demo keys on every start; `sessionmood serve --no-demo` in production)\n",
                flush=True,
            )
        try:
            yield
        finally:
            await store.close()

    middleware = [Middleware(CORSMiddleware)]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.api = api
    app.state.settings = settings
    return app


def _redact(url: str) -> str:
    """A database URL without its password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
