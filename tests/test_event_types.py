"""The 12 event types, one list everywhere: the client's wire models (the one
Python source), the server's validation, ``/openapi.json``, the tracker's
source (``EVENT_TYPES`` in tracker/src) and the built ``static/tracker.js``.

The tracker files are only read here. A type added to the wire models and not
to the tracker (or the other way round) fails this test, which names the
source that differs and what it lacks or adds.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
from starlette.testclient import TestClient

from sessionmood_client import types as wire
from sessionmood_server.http import validation
from sessionmood_server.http.errors import HTTPProblem

ROOT = Path(__file__).resolve().parent.parent
TRACKER_SRC = ROOT / "tracker" / "src"
BUILT_TRACKER = ROOT / "static" / "tracker.js"
NOW = 1_795_000_000.0

# A JavaScript string literal, in either quotes.
_JS_STRING = re.compile(r"""'([^'\\]*)'|"([^"\\]*)\"""")
# In the minified bundle, names are mangled: a list of type names is a string
# split on spaces or an array of strings, whatever it is called.
_BUNDLED_LIST = re.compile(
    r"""(["'])([a-z_]+(?: [a-z_]+)+)\1\.split\(\1 \1\)|\[((?:(["'])[a-z_]+\4,)+(["'])[a-z_]+\5)\]"""
)


def _strings(text: str) -> list[str]:
    return [a or b for a, b in _JS_STRING.findall(text)]


def tracker_types(source: str) -> list[str] | None:
    """The names of ``EVENT_TYPES = ...`` in a tracker module: a string split on
    spaces (``'click scroll'.split(' ')``) or an array of strings; None if the
    module does not declare it."""
    found = re.search(r"\bEVENT_TYPES\s*=\s*([^;]*)", source)
    if found is None:
        return None
    value = found.group(1)
    if ".split(" in value:
        return _strings(value)[0].split()
    return _strings(value)


def tracker_source_types(sources: Mapping[str, str]) -> list[str]:
    """``EVENT_TYPES`` of the one tracker module (of ``sources``, name -> text) that declares it."""
    declared = {name: t for name, text in sources.items() if (t := tracker_types(text)) is not None}
    assert len(declared) == 1, f"EVENT_TYPES declared in {sorted(declared) or 'no module'}"
    [types] = declared.values()
    return types


def bundled_types(bundle: str) -> list[str]:
    """The one list literal of the built tracker that holds ``rage_click``."""
    lists = []
    for match in _BUNDLED_LIST.finditer(bundle):
        names = match.group(2).split() if match.group(2) else _strings(match.group(3))
        if "rage_click" in names:
            lists.append(names)
    assert len(lists) == 1, f"{len(lists)} lists of event types in the bundle: {lists}"
    return lists[0]


def openapi_types(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """Where the OpenAPI document lists event types: the events body's
    discriminator and its variants, and an exported event's ``type``."""
    schemas = document["components"]["schemas"]
    items = schemas["EventsRequest"]["properties"]["events"]["items"]
    variants = [ref["$ref"].rsplit("/", 1)[1] for ref in items["oneOf"]]
    return {
        "openapi: EventsRequest discriminator": list(items["discriminator"]["mapping"]),
        "openapi: EventsRequest variants": [
            schemas[name]["properties"]["type"]["const"] for name in variants
        ],
        "openapi: ExportedEvent.type": list(schemas["ExportedEvent"]["properties"]["type"]["enum"]),
    }


def server_accepts(candidates: Iterable[str]) -> list[str]:
    """The candidates the server's validation takes as the type of an event."""
    accepted = []
    for name in candidates:
        body = orjson.dumps({"events": [{"type": name}]})
        try:
            validation.parse_events_body(body, None, 10, NOW)
        except HTTPProblem:
            continue
        accepted.append(name)
    return accepted


def server_valid_types() -> list[str]:
    """The ``valid_types`` the server lists in its answer to an unknown type."""
    body = orjson.dumps({"events": [{"type": "no_such_type"}]})
    with pytest.raises(HTTPProblem) as refused:
        validation.parse_events_body(body, None, 10, NOW)
    valid: list[str] = refused.value.body["valid_types"]
    return valid


def disagreements(expected: Sequence[str], sources: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Each source whose list is not ``expected`` (as a set, without repeats):
    what it lacks, adds or repeats."""
    out = {}
    for name, listed in sources.items():
        missing = sorted(set(expected) - set(listed))
        extra = sorted(set(listed) - set(expected))
        repeated = sorted({t for t in listed if list(listed).count(t) > 1})
        if missing or extra or repeated:
            out[name] = f"missing {missing}, extra {extra}, repeated {repeated}"
    return out


def _tracker_modules() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(TRACKER_SRC.glob("*.js"))}


def _all_sources(document: Mapping[str, Any]) -> dict[str, Sequence[str]]:
    tracker = tracker_source_types(_tracker_modules())
    bundle = bundled_types(BUILT_TRACKER.read_text())
    models = get_args(get_args(wire.Event)[0])
    sources: dict[str, Sequence[str]] = {
        "client: EventType": get_args(wire.EventType),
        "client: event models": [model.model_fields["type"].default for model in models],
        "server: VALID_TYPES": sorted(validation.VALID_TYPES),
        "server: valid_types in a 400": server_valid_types(),
        "tracker/src: EVENT_TYPES": tracker,
        "static/tracker.js": bundle,
        **openapi_types(document),
    }
    # What the server accepts, out of every name any source lists (and a decoy).
    candidates = {t for listed in sources.values() for t in listed} | {"no_such_type"}
    sources["server: accepted by validation"] = server_accepts(sorted(candidates))
    return sources


def test_every_source_lists_the_same_twelve_types(client: TestClient) -> None:
    assert len(wire.EVENT_TYPES) == 12 == len(set(wire.EVENT_TYPES))
    sources = _all_sources(client.get("/openapi.json").json())
    assert disagreements(wire.EVENT_TYPES, sources) == {}


def test_a_source_that_differs_is_named(client: TestClient) -> None:
    """Mutated copies of the tracker's source, the bundle and the document: each
    finder reads the change, and only the changed source is reported."""
    modules = _tracker_modules()
    [declaring] = [n for n, text in modules.items() if tracker_types(text) is not None]
    renamed = {**modules, declaring: re.sub(r"\bblur\b", "blurred", modules[declaring], count=1)}
    # (The bundle lists the types in one string: "... focus blur scroll ...".)
    bundle = re.sub(r" blur(?=[ \"'])", "", BUILT_TRACKER.read_text(), count=1)
    document = copy.deepcopy(client.get("/openapi.json").json())
    document["components"]["schemas"]["ExportedEvent"]["properties"]["type"]["enum"].append("tap")
    mutated = {
        "tracker/src: EVENT_TYPES": tracker_source_types(renamed),
        "static/tracker.js": bundled_types(bundle),
        **openapi_types(document),
        "client: EVENT_TYPES": [*wire.EVENT_TYPES, "click"],
    }
    assert disagreements(wire.EVENT_TYPES, mutated) == {
        "tracker/src: EVENT_TYPES": "missing ['blur'], extra ['blurred'], repeated []",
        "static/tracker.js": "missing ['blur'], extra [], repeated []",
        "openapi: ExportedEvent.type": "missing [], extra ['tap'], repeated []",
        "client: EVENT_TYPES": "missing [], extra [], repeated ['click']",
    }


def test_the_server_refuses_a_type_the_models_do_not_have() -> None:
    assert server_accepts(["click", "tap", "Click"]) == ["click"]


@pytest.mark.parametrize(
    ("declaration", "types"),
    [
        ("export const EVENT_TYPES =\n  'click rage_click'.split(' ');", ["click", "rage_click"]),
        ('const EVENT_TYPES = "click  scroll".split(" ")', ["click", "scroll"]),
        (
            "export const EVENT_TYPES = Object.freeze([\n  'click',\n  \"blur\",\n]);",
            ["click", "blur"],
        ),
        ("export const TYPES = 'click'.split(' ');", None),
    ],
)
def test_the_tracker_finder_reads_each_way_of_writing_the_list(
    declaration: str, types: list[str] | None
) -> None:
    assert tracker_types(declaration) == types


def test_the_bundle_finder_reads_a_split_string_or_an_array() -> None:
    assert bundled_types('a="x y".split(" "),e="click rage_click".split(" ")') == [
        "click",
        "rage_click",
    ]
    assert bundled_types("n=['rage_click','error'],m=/^(a|b)$/") == ["rage_click", "error"]
