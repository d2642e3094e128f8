"""Static files and the headers of everything served through the stack: the
tracker, the dashboard and the demo shop with caching, gzip and a strict CSP."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
