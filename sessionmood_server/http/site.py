"""The pages beside the API: the tracker and its types under ``/static``, the
dashboard, and the demo shop, whose pages carry this run's publishable key.

Each directory is served only if it is there: a wheel ships all three, a
checkout has them in the repository (``_shipped``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sessionmood_server.http.responses import NO_STORE
from sessionmood_server.http.static import CachedStaticFiles
from sessionmood_server.keys import new_key
from sessionmood_server.storage import Storage

PACKAGE_DIR = Path(__file__).resolve().parent.parent
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
# Where the demo's HTML pages take the publishable key.
KEY_PLACEHOLDER = "{{SESSIONMOOD_PUBLISHABLE_KEY}}"


@dataclass(frozen=True, slots=True)
class DemoKeys:
    """The demo tenant's keys: new on every start, so a copied link dies with the run."""

    secret: str
    publishable: str


class DemoShop:
    """The demo shop: its tenant, opened with new keys at each start, and its
    pages, served with the publishable key filled in."""

    def __init__(self, directory: Path = DEMO_DIR) -> None:
        self.directory = directory
        self.keys: DemoKeys | None = None  # until ``open``

    async def open(self, storage: Storage, origins: tuple[str, ...], now: float) -> DemoKeys:
        keys = DemoKeys(new_key("secret"), new_key("publishable"))
        await storage.ensure_demo_tenant(keys.secret, keys.publishable, origins, now)
        self.keys = keys
        return keys

    async def page(self, request: Request) -> Response:
        """A file of the shop; an HTML page with this run's publishable key in it."""
        rel = request.path_params["path"] or "index.html"
        if "\x00" in rel:  # the file system would raise, not answer "no such file"
            raise HTTPException(404)
        path = (self.directory / rel).resolve()
        if self.directory not in path.parents or not path.is_file():
            raise HTTPException(404)
        if path.suffix != ".html":
            return FileResponse(path)
        assert self.keys is not None, "the demo is served once the lifespan opened it"
        html = path.read_text().replace(KEY_PLACEHOLDER, self.keys.publishable)
        return HTMLResponse(html, headers=NO_STORE)


def _redirect(to: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return RedirectResponse(to)

    return endpoint


def site_routes(demo: DemoShop | None) -> list[BaseRoute]:
    """``/static``, ``/dashboard`` and, with ``demo``, ``/`` and ``/demo``."""
    routes: list[BaseRoute] = []
    if STATIC_DIR.is_dir():
        routes.append(Mount("/static", app=CachedStaticFiles(directory=STATIC_DIR), name="static"))
    if DASHBOARD_DIR.is_dir():
        routes += [
            Route("/dashboard", _redirect("/dashboard/"), methods=["GET"]),
            Mount("/dashboard", app=StaticFiles(directory=DASHBOARD_DIR, html=True)),
        ]
    if demo is not None and demo.directory.is_dir():
        routes += [
            Route("/", _redirect("/demo/"), methods=["GET"]),
            Route("/demo", _redirect("/demo/"), methods=["GET"]),
            Route("/demo/{path:path}", demo.page, methods=["GET"]),
        ]
    return routes
