"""A backend deciding what to do for a visitor's session (sync client).

Start a server (``sessionmood serve``, or ``make run``), then, with ``make run``'s
environment (``.venv/bin/python``) or any with ``pip install sessionmood``::

    SESSIONMOOD_API_KEY=sm_... python examples/backend_sync.py

``SESSIONMOOD_BASE_URL`` defaults to http://127.0.0.1:8000. Without a key the
example creates a throwaway starter key first, so it runs on a fresh server.
"""

from __future__ import annotations

import os
import sys
import uuid

from sessionmood_client import SessionMoodClient, SessionMoodError, SuggestedAction

# What this (pretend) shop does for each suggested action.
UI_ACTIONS: dict[SuggestedAction, str] = {
    "show_live_chat": "opened the live-chat widget",
    "show_tooltip": "showed a tooltip on the payment form",
    "show_recommendations": "showed similar products",
    "show_exit_offer": "offered 10% off to stay",
    "no_action": "left the visitor alone",
}


def main() -> int:
    try:
        # The constructor reads the key from the environment; only a demo
        # without one falls back to minting a key.
        api_key = os.environ.get("SESSIONMOOD_API_KEY") or (
            SessionMoodClient.generate_key("backend example").api_key
        )
        session_id = f"demo_{uuid.uuid4().hex[:12]}"
        with SessionMoodClient(api_key) as client:
            # What the checkout handler saw; the tracker sends it in one batch.
            with client.tracker(session_id, max_batch=20) as tracker:
                tracker.track("page_view", url="/checkout")
                tracker.track("focus")
                tracker.track("rage_click", x=240, y=580)
                tracker.track("rage_click", x=241, y=579)
                tracker.track("error", message="Payment failed")
                tracker.track("back_nav")

            mood = client.get_mood(session_id)
            print(f"{session_id}: {mood.mood} ({mood.confidence:.0%}), signals {mood.signals}")
            done = UI_ACTIONS[mood.suggested_action]
            print(f"suggested {mood.suggested_action}: {done}")

            # Tell the engine what happened; was_helpful stays unknown for now.
            client.send_feedback(session_id, mood.suggested_action, notes=done)
    except SessionMoodError as exc:
        print(f"SessionMood error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
