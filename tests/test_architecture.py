"""The layers hold: the pure parts import without the server's I/O stack, and no
server module imports another that (directly or not) imports it back.

The layer contract itself (who may import whom) is import-linter's, in
``pyproject.toml``, run by ``make lint``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent

# The domain layer and the wire models: what must run with only pydantic and
# orjson installed (and the standard library).
PURE_MODULES = [
    "sessionmood_client.types",
    "sessionmood_server.engine",
    "sessionmood_server.scoring",
    "sessionmood_server.learning",
    "sessionmood_server.keys",
    "sessionmood_server.records",
    "sessionmood_server.outbox",
    "sessionmood_server.limits",
]

# Run in a fresh interpreter that finds nothing installed in site-packages but
# these distributions (and our own packages, from the checkout): as if
# starlette, httpx, anyio, asyncpg, uvicorn... were not installed at all.
_ONLY_PYDANTIC_AND_ORJSON = """
import importlib.abc, importlib.machinery, sys, sysconfig

ALLOWED = {
    "pydantic", "pydantic_core", "annotated_types", "typing_extensions",
    "typing_inspection", "orjson", "sessionmood_client", "sessionmood_server",
}
SITE = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "." in name or name in ALLOWED:
            return None  # submodules come with their package
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        where = "" if spec is None else spec.origin or "".join(
            spec.submodule_search_locations or ())
        if any(where.startswith(site) for site in SITE):
            raise ModuleNotFoundError(f"No module named {name!r} (not installed here)")
        return None

sys.meta_path.insert(0, NotInstalled())
for name in sys.argv[1:]:
    __import__(name)
print("ok")
"""


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_with_only_pydantic_and_orjson(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_ONLY_PYDANTIC_AND_ORJSON), module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module) & modules:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_among_the_servers_modules() -> None:
    graph = grimp.build_graph("sessionmood_server", "sessionmood_client")
    server = {m for m in graph.modules if m.partition(".")[0] == "sessionmood_server"}
    assert len(server) > 20  # the graph really was built
    assert _cycles(graph, server) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c", "d"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    graph.add_import(importer="c", imported="a")
    graph.add_import(importer="c", imported="d")
    assert _cycles(graph, {"a", "b", "c", "d"}) == [["a", "b", "c"]]


MAX_MODULE_LINES = 800


def test_no_module_is_over_800_lines() -> None:
    """A file past ~800 lines wants splitting (docs/architecture.md): every Python
    module of the repository, tests included."""
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(tracked) > 50  # really listed the repository
    sizes = {path: len((ROOT / path).read_text().splitlines()) for path in tracked}
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
