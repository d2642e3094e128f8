"""A webhook endpoint that checks each delivery's signature before trusting it.

Create a webhook (growth or pro plan) and keep its secret::

    python -c "from sessionmood_client import SessionMoodClient as C; \\
        print(C().create_webhook('https://your.host/sessionmood').secret)"

then run this app (Starlette and uvicorn come with ``sessionmood[server]``, so
``make run``'s ``.venv/bin`` has them)::

    SESSIONMOOD_WEBHOOK_SECRET=whsec_... uvicorn --app-dir examples webhook_receiver:app --port 9000

Deliveries follow Standard Webhooks, so any of its libraries (``standardwebhooks``,
``svix``) verifies them as well as ``verify_webhook`` does. They are
at-least-once: the same delivery may arrive twice, with the same ``webhook-id``
header, which is what to deduplicate on. Answer fast (2xx); slow work belongs
in a queue. Answer 410 to stop deliveries for good (the webhook is disabled).
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sessionmood_client import WebhookVerificationError, verify_webhook

SECRET_ENV = "SESSIONMOOD_WEBHOOK_SECRET"


def _secret() -> str:
    secret = os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        raise SystemExit(f"Set {SECRET_ENV} to the secret create_webhook() returned.")
    return secret


async def sessionmood(request: Request) -> Response:
    # The raw bytes: a parsed and re-serialised body is not the one that was signed.
    body = await request.body()
    try:
        event = verify_webhook(body, request.headers, SECRET)
    except WebhookVerificationError as exc:
        return PlainTextResponse(f"rejected: {exc}", status_code=400)
    change = event.data
    print(
        f"{request.headers['webhook-id']} {change.session_id}: {change.previous_mood} -> "
        f"{change.mood} ({change.confidence:.0%}), suggest {change.suggested_action}",
        flush=True,
    )
    return Response(status_code=204)


SECRET = _secret()
app = Starlette(routes=[Route("/sessionmood", sessionmood, methods=["POST"])])
