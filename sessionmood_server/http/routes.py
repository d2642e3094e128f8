"""Routes from the operation table: the Starlette routes of every operation, and
the direct (fast-path) entries for the operations marked ``fast``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.convertors import Convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sessionmood_server.http.api import Api
from sessionmood_server.http.operations import OPERATIONS, Operation

Endpoint = Callable[[Request], Awaitable[Response]]


class AnyText(Convertor[str]):
    """Like ``{x:path}``, but also across newlines."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Session ids are opaque: URL-encoded slashes and even newlines must
# round-trip, so the id matches anything; the fixed suffix tells routes apart.
# Starlette keeps convertors in one process-wide table: the entry point
# registers these (``starlette.convertors.register_url_convertor``) before
# any route is built.
CONVERTORS: dict[str, Convertor[str]] = {"session_id": AnyText()}


def route_path(path: str) -> str:
    """A documented path as a Starlette route path, with our convertors."""
    for name in CONVERTORS:
        path = path.replace("{" + name + "}", "{" + name + ":" + name + "}")
    return path


def _route(path: str, handlers: dict[str, Endpoint]) -> Route:
    """One route for several methods, so a 405 on the path names all of them."""
    if len(handlers) == 1:
        ((method, handler),) = handlers.items()
        return Route(path, handler, methods=[method])

    async def endpoint(request: Request) -> Response:
        # Starlette answers HEAD with the GET endpoint; so do we.
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, endpoint, methods=list(handlers))


def api_routes(api: Api, operations: tuple[Operation, ...] = OPERATIONS) -> list[Route]:
    """One route per path of ``operations``, the hot (fast-path) ones first:
    Starlette tries routes in order."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    hot = sorted(operations, key=lambda op: not op.fast)  # stable: table order otherwise
    for op in hot:
        by_path.setdefault(op.path, {})[op.method] = functools.partial(op.handler, api)
    return [_route(route_path(path), handlers) for path, handlers in by_path.items()]


@dataclass(frozen=True, slots=True)
class FastRoute:
    """A hot operation served without the router: its path is ``prefix``, the
    one path parameter, then ``suffix`` (the same greedy match as the route's)."""

    method: str
    prefix: str
    suffix: str
    param: str
    handler: Endpoint
    template: str = ""  # the documented path, the metrics' route label

    @property
    def shortest(self) -> int:
        return len(self.prefix) + len(self.suffix)


def fast_routes(api: Api, operations: tuple[Operation, ...] = OPERATIONS) -> list[FastRoute]:
    out = []
    for op in operations:
        if not op.fast:
            continue
        (param,) = op.path_params  # one parameter, matched greedily like the route's
        prefix, _, suffix = op.path.partition("{" + param + "}")
        handler = functools.partial(op.handler, api)
        out.append(FastRoute(op.method, prefix, suffix, param, handler, op.path))
    return out
