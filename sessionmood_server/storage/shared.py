"""Decisions both backends make, written once: they differ only in their SQL."""

from __future__ import annotations

from sessionmood_client.types import MoodLabel

DEMO_CUSTOMER = "SessionMood demo"


def busiest_first(pages: dict[str, dict[MoodLabel, int]]) -> dict[str, dict[MoodLabel, int]]:
    """``page_moods``' order: most sessions first, ties by URL (code point order)."""
    return dict(sorted(pages.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))
