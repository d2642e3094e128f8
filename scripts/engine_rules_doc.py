"""The rule table of docs/engine.md, generated from ``rules.RULES``.

Usage::

    .venv/bin/python scripts/engine_rules_doc.py            # print the table
    .venv/bin/python scripts/engine_rules_doc.py --write    # rewrite it in docs/engine.md

The table sits between ``<!-- rules:begin -->`` and ``<!-- rules:end -->``;
``tests/test_engine.py`` fails when it differs from what this prints.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sessionmood_server import rules  # noqa: E402

DOC = ROOT / "docs" / "engine.md"
BEGIN, END = "<!-- rules:begin -->", "<!-- rules:end -->"
_ACTIVE = set(rules.ACTIVE)


def _condition(r: rules.Rule) -> str:
    parts = []
    if r.field is not None:
        if r.equals is not None:
            cond = f"{r.field} == {json.dumps(r.equals)}"
        elif r.lo != -math.inf and r.hi != math.inf:
            cond = f"{r.lo:g} <= {r.field} < {r.hi:g}"
        elif r.lo != -math.inf:
            cond = f"{r.field} >= {r.lo:g}"
        else:
            cond = f"{r.field} < {r.hi:g}"
        parts.append(cond + (" (or absent)" if r.when_missing else ""))
    if r.requires is not None:
        parts.append(f"scaled by `{r.requires}`")
    if r.unless_after:
        cancel = set(r.unless_after)
        parts.append(
            "until any deliberate action" if cancel == _ACTIVE else "until " + ", ".join(cancel)
        )
    if r.same_spot:
        parts.append(
            f"two of the latest {rules.SPOT_MEMORY} at one spot (one `target`, or"
            f" {rules.SAME_SPOT_PX:g} px)"
        )
    if r.after:
        parts.append(f"within {r.within_s:g} s of the latest {' or '.join(r.after)}")
    return "; ".join(parts) or "-"


def _role(r: rules.Rule) -> str:
    """Cues suspend older patterns unless marked otherwise; patterns only if marked."""
    suspends = (not r.ongoing) if r.suspends is None else r.suspends
    if r.ongoing:
        return "pattern, suspends" if suspends else "pattern"
    return "cue" if suspends else "cue, suspends nothing"


def render() -> str:
    """The markdown table, one row per rule in table order."""
    lines = [
        "| signal | events | condition | half-life | ramp (at -> full) | weights | role"
        " | source | why |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rules.RULES:
        weights = ", ".join(f"{m} {w:+g}" for m, w in r.weights.items())
        lines.append(
            f"| `{r.signal}` | {', '.join(r.events)} | {_condition(r)} | {r.half_life_s:g} s"
            f" | {r.at:g} -> {r.full:g} | {weights} | {_role(r)} | {r.source} | {r.reason} |"
        )
    return "\n".join(lines)


def documented() -> str:
    """The table as it stands in docs/engine.md."""
    text = DOC.read_text()
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the table in docs/engine.md")
    args = ap.parse_args()
    table = render()
    if not args.write:
        print(table)
        return
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
