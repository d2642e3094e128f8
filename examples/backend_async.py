"""A backend deciding what to do for a visitor's session (async client).

Start a server (``sessionmood serve``, or ``make run``), then, with ``make run``'s
environment (``.venv/bin/python``) or any with ``pip install sessionmood``::

    SESSIONMOOD_API_KEY=sm_... python examples/backend_async.py

``SESSIONMOOD_BASE_URL`` defaults to http://127.0.0.1:8000. Without a key the
example creates a throwaway starter key first, so it runs on a fresh server.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from sessionmood_client import (
    AsyncSessionMoodClient,
    ErrorEvent,
    PageViewEvent,
    RageClickEvent,
    SessionMoodError,
    SuggestedAction,
)

# What this (pretend) shop does for each suggested action.
UI_ACTIONS: dict[SuggestedAction, str] = {
    "show_live_chat": "opened the live-chat widget",
    "show_tooltip": "showed a tooltip on the payment form",
    "show_recommendations": "showed similar products",
    "show_exit_offer": "offered 10% off to stay",
    "no_action": "left the visitor alone",
}


async def handle_session(client: AsyncSessionMoodClient, session_id: str) -> None:
    # Typed events, sent in one request; the answer already carries the mood.
    posted = await client.send_events(
        session_id,
        [
            PageViewEvent(url="/checkout"),
            RageClickEvent(x=240, y=580),
            RageClickEvent(x=241, y=579),
            ErrorEvent(message="Payment failed"),
            {"type": "back_nav"},
        ],
    )
    print(f"{session_id}: stored {posted.events_stored}, mood now {posted.current_mood}")

    mood = await client.get_mood(session_id)
    done = UI_ACTIONS[mood.suggested_action]
    print(f"{session_id}: {mood.mood} ({mood.confidence:.0%}) -> {done}")
    await client.send_feedback(session_id, mood.suggested_action, notes=done)


async def main() -> int:
    try:
        api_key = os.environ.get("SESSIONMOOD_API_KEY") or (
            (await AsyncSessionMoodClient.generate_key("backend example")).api_key
        )
        async with AsyncSessionMoodClient(api_key) as client:
            # Several visitors at once over one connection pool.
            sessions = [f"demo_{uuid.uuid4().hex[:12]}" for _ in range(3)]
            await asyncio.gather(*(handle_session(client, s) for s in sessions))
    except SessionMoodError as exc:
        print(f"SessionMood error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
