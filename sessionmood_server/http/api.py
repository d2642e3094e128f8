"""What every handler works with: one settings object, one storage, and the
services and per-process limits built on them. Handlers are plain functions
``handler(api, request)``; the operation table binds them to routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sessionmood_client import __version__ as VERSION
from sessionmood_client.types import HealthResponse
from sessionmood_server.http.responses import model_response
from sessionmood_server.limits import RateLimiter, StreamSlots
from sessionmood_server.services.holdout import HoldoutCache
from sessionmood_server.services.live import LiveFeed
from sessionmood_server.services.policy import PolicyCache
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage


class Api:
    """The handlers' shared state, bound to one storage and one settings object."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.holdouts = HoldoutCache(storage, settings.holdout_key)
        self.policies = PolicyCache(storage, self.holdouts)
        self.feed = LiveFeed(storage, poll_s=min(5.0, settings.sse_heartbeat_s))
        self.stream_slots = StreamSlots()
        on = settings.limits
        # New sessions through publishable keys: per (key, address), (key, origin), key.
        self.new_by_source = RateLimiter(settings.new_sessions_per_address)
        self.new_by_origin = RateLimiter(settings.new_sessions_per_origin)
        self.new_by_key = RateLimiter(settings.new_sessions_per_key)
        self.keys_by_source = RateLimiter(settings.keys_per_address)
        self.limits_on = on
        self.max_session_events = settings.max_session_events if on else 0


async def health(api: Api, request: Request) -> Response:
    try:
        ok = await api.storage.ping()
    except Exception:
        ok = False
    body = HealthResponse(status="ok" if ok else "down", version=VERSION)
    return model_response(body, 200 if ok else 503)
