"""The rule table: well-formed, checked when compiled, and documented as it is."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import replace
from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from sessionmood_client.types import EVENT_TYPES, MOODS
from sessionmood_server import engine, rules


def test_rule_table_is_well_formed() -> None:
    assert rules.RULES
    for r in rules.RULES:
        assert re.fullmatch(r"[a-z_]+", r.signal)
        assert set(r.events) <= set(EVENT_TYPES) and r.events
        assert set(r.weights) <= set(MOODS) and "neutral" not in r.weights
        assert r.half_life_s > 0 and r.full > r.at >= 0
        assert r.reason.strip() and len(r.reason) < 200
        assert r.requires is None or any(q.signal == r.requires for q in rules.RULES)
        assert r.source.strip()
        assert not (r.after and r.within_s <= 0)


def test_the_documented_rule_table_is_the_rule_table() -> None:
    path = Path(__file__).resolve().parents[1] / "scripts" / "engine_rules_doc.py"
    spec = importlib.util.spec_from_file_location("engine_rules_doc", path)
    assert spec is not None and spec.loader is not None
    doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(doc)
    assert doc.documented() == doc.render(), "run scripts/engine_rules_doc.py --write"
    assert doc.render().count("\n") == len(rules.RULES) + 1


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"requires": "long_idle"}, "only require one listed before it"),
        ({"after": ("click",), "unless_after": ("scroll",)}, "one guard per rule"),
        ({"same_spot": True, "after": ("click",)}, "one guard per rule"),
        ({"weights": {"frustrated": -1.0}}, "every rule pushes"),
    ],
)
def test_a_malformed_table_is_refused_when_compiled(
    change: dict[str, object], problem: str
) -> None:
    table = (replace(rules.RULES[0], **change), *rules.RULES[1:])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=problem):
        engine._check(table)
    engine._check(rules.RULES)  # the real table passes


def test_the_hot_views_hold_the_records_fields_in_their_order() -> None:
    """fold and verdict unpack exact tuples (faster than NamedTuples); the type
    aliases they are declared with list the records' fields in order."""
    pairs = [
        (engine._Matcher, engine._MatcherValues),
        (engine._Row, engine._RowValues),
        (engine._Pusher, engine._PusherValues),
        (engine._Suspension, engine._SuspensionValues),
    ]
    for record, alias in pairs:
        assert tuple(get_type_hints(record).values()) == get_args(alias), record.__name__
    assert all(type(v) is tuple for v in engine._RULE_ROWS)
    assert [engine._Row(*v) for v in engine._RULE_ROWS] == list(engine._ROWS)
