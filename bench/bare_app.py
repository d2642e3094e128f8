"""The reference: a bare Starlette app that only parses the same request body.

SessionMood's throughput is reported as a ratio to this app, measured in the
same run with the same uvicorn settings, because absolute figures on shared
machines drift by ±30 %.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def post_events(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"events_stored": len(body["events"])})


async def get_mood(request: Request) -> JSONResponse:
    return JSONResponse({"session_id": request.path_params["sid"], "mood": "neutral"})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/v1/sessions/{sid:path}/events", post_events, methods=["POST"]),
        Route("/v1/sessions/{sid:path}/mood", get_mood),
    ]
)
