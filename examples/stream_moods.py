"""Follow every mood change of your sessions as it happens (Server-Sent Events).

Start a server (``sessionmood serve``, or ``make run``), then, with ``make run``'s
environment (``.venv/bin/python``) or any with ``pip install sessionmood``::

    SESSIONMOOD_API_KEY=sm_... python examples/stream_moods.py [LAST_EVENT_ID]

``SESSIONMOOD_BASE_URL`` defaults to http://127.0.0.1:8000. The stream reconnects
by itself after a dropped connection and resumes where it stopped; pass the last
id it printed to pick up after a restart of this script. Ctrl-C to stop.
"""

from __future__ import annotations

import sys

from sessionmood_client import MoodStream, SessionMoodClient, SessionMoodError


def main() -> int:
    last_event_id = sys.argv[1] if len(sys.argv) > 1 else None
    stream: MoodStream | None = None
    try:
        # A generous max_retries: a long-lived stream should ride out a server restart.
        with SessionMoodClient(max_retries=10) as client:
            stream = client.stream_moods(last_event_id=last_event_id)
            print(f"Following mood changes on {client.base_url} (Ctrl-C to stop)")
            with stream:
                for change in stream:
                    print(
                        f"#{change.id} {change.occurred_at:%H:%M:%S} {change.session_id}: "
                        f"{change.previous_mood} -> {change.mood} ({change.confidence:.0%}) "
                        f"on {change.url or '?'}; suggest {change.suggested_action}"
                    )
    except KeyboardInterrupt:
        resume = stream.last_event_id if stream is not None else last_event_id
        print(f"\nStopped; resume with: python {sys.argv[0]} {resume or ''}")
    except SessionMoodError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
