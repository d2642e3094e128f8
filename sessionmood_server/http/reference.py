"""``/docs``: the API reference, browsable. Swagger UI renders ``/openapi.json``;
its files come from the ``swagger-ui-bundle-v2`` package and are served by
this server (no CDN), under the same Content-Security-Policy as the dashboard."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from sessionmood_server.http.static import CachedStaticFiles

PAGE_DIR = Path(__file__).resolve().parent.parent / "reference"
ASSETS = Path(swagger_ui_path)


async def _page(request: Request) -> Response:
    return FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _script(request: Request) -> Response:
    return FileResponse(PAGE_DIR / "reference.js", headers={"Cache-Control": "no-cache"})


async def _to_page(request: Request) -> Response:
    return RedirectResponse("/docs/")


def docs_routes() -> list[BaseRoute]:
    return [
        Route("/docs", _to_page, methods=["GET"]),
        Route("/docs/", _page, methods=["GET"]),
        Route("/docs/reference.js", _script, methods=["GET"]),
        Mount("/docs/assets", app=CachedStaticFiles(directory=ASSETS)),
    ]
