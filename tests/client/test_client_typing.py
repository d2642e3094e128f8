"""User code typed through ``sessionmood_client`` checks clean under ``mypy --strict``.

One mypy run over a snippet that uses both clients the way a backend would,
with ``assert_type`` on what comes back, plus two deliberate mistakes that
mypy must report: that proves the types are real, not ``Any``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = textwrap.dedent(
    """\
    from __future__ import annotations

    from datetime import datetime
    from typing import assert_type

    from sessionmood_client import (
        AsyncEventTracker,
        AsyncSessionMoodClient,
        ClickEvent,
        EventTracker,
        KeyGenerateResponse,
        MoodLabel,
        MoodResponse,
        NotFoundError,
        PostEventsResponse,
        RateLimitError,
        SessionMoodClient,
        SuggestedAction,
        UsageResponse,
    )


    def decide(client: SessionMoodClient, session_id: str) -> SuggestedAction:
        posted = client.send_events(session_id, [ClickEvent(x=1, y=2), {"type": "idle"}])
        assert_type(posted, PostEventsResponse)
        assert_type(posted.current_mood, MoodLabel)
        try:
            mood = client.get_mood(session_id)
        except NotFoundError as exc:
            assert_type(exc.status_code, int)
            assert_type(exc.request_id, str | None)
            return "no_action"
        except RateLimitError as exc:
            assert_type(exc.reset_at, datetime | None)
            raise
        assert_type(mood, MoodResponse)
        client.send_feedback(session_id, mood.suggested_action, was_helpful=True)
        with client.tracker(session_id, max_batch=10) as tracker:
            assert_type(tracker, EventTracker)
            tracker.track("rage_click", x=3, y=4)
        assert_type(client.get_usage(), UsageResponse)
        return mood.suggested_action


    async def decide_async(session_id: str) -> SuggestedAction:
        key = await AsyncSessionMoodClient.generate_key("Acme", plan="starter")
        assert_type(key, KeyGenerateResponse)
        async with AsyncSessionMoodClient(key.api_key) as client:
            mood = await client.get_mood(session_id)
            async with client.tracker(session_id) as tracker:
                assert_type(tracker, AsyncEventTracker)
                await tracker.track("focus")
            return mood.suggested_action


    def mistakes(client: SessionMoodClient) -> None:
        client.get_mood(42)
        SessionMoodClient.generate_key("Acme", plan="enterprise")
    """
)


@pytest.mark.slow
def test_user_code_type_checks_strictly(tmp_path: Path) -> None:
    snippet = tmp_path / "backend.py"
    snippet.write_text(SNIPPET)
    config = tmp_path / "mypy.ini"
    # No pydantic plugin on purpose: a user's project may not enable it.
    config.write_text(f"[mypy]\nstrict = True\nmypy_path = {ROOT}\n")
    stdout, stderr, _status = mypy_api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--no-error-summary",
            "--hide-error-context",
            str(snippet),
        ]
    )
    assert stderr == ""
    lines = SNIPPET.splitlines()
    get_mood_line = lines.index("    client.get_mood(42)") + 1
    plan_line = lines.index('    SessionMoodClient.generate_key("Acme", plan="enterprise")') + 1
    errors = sorted(line.split(": error: ")[0] for line in stdout.splitlines())
    assert errors == [f"{snippet}:{get_mood_line}", f"{snippet}:{plan_line}"], stdout
