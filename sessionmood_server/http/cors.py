"""CORS for an API that browsers call from any site.

Any origin may call (publishable keys enforce their own origin lists in the
handlers, and no cookies are involved, so there is nothing for CORS to
protect). Pure ASGI and only active when a request carries ``Origin``: server
to server calls, the bulk of the traffic, pay nothing for it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_METHODS = b"GET, POST, PUT, DELETE, OPTIONS"
ALLOW_HEADERS = b"X-Api-Key, Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
EXPOSE_HEADERS = b"Idempotent-Replayed, X-Request-Id, Retry-After"
MAX_AGE = b"600"
# What a simple (non-preflight) response carries, for code outside this middleware.
CORS_RESPONSE_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": EXPOSE_HEADERS.decode(),
}


_RESPONSE_HEADERS = [(k.lower().encode(), v.encode()) for k, v in CORS_RESPONSE_HEADERS.items()]


class CORSMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        has_origin = preflight = False
        for name, _ in headers:
            if name == b"origin":
                has_origin = True
            elif name == b"access-control-request-method":
                preflight = True
        if not has_origin:
            await self.app(scope, receive, send)
            return
        if preflight and scope["method"] == "OPTIONS":
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", b"*"),
                        (b"access-control-allow-methods", ALLOW_METHODS),
                        (b"access-control-allow-headers", ALLOW_HEADERS),
                        (b"access-control-max-age", MAX_AGE),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_RESPONSE_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_cors)
