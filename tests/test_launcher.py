"""A client-only install (``pip install sessionmood``, no ``[server]`` extra) has
a ``sessionmood`` command that says what to install instead of crashing."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The top-level modules the client needs, with where they live: found by
# importing the whole client in a fresh interpreter.
CLIENT_CLOSURE = textwrap.dedent(
    """
    import json, site, sys
    import sessionmood_client, sessionmood_client._client, sessionmood_client._stream
    import sessionmood_client._tracker, sessionmood_client._webhooks
    roots = tuple(site.getsitepackages())
    found = {}
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None) or ""
        if "." not in name and where.startswith(roots):
            found[name] = where
    print(json.dumps(found))
    """
)


@pytest.fixture(scope="module")
def client_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the client's dependencies and nothing else (no
    starlette, uvicorn, orjson): what ``pip install sessionmood`` leaves."""
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_CLOSURE],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    target = tmp_path_factory.mktemp("client-only")
    for name, where in json.loads(out).items():
        assert name not in {"starlette", "uvicorn", "orjson"}, name
        path = Path(where)
        source = path.parent if path.name == "__init__.py" else path
        (target / source.name).symlink_to(source)
    for package in ("sessionmood_client", "sessionmood_server"):
        (target / package).symlink_to(ROOT / package)
    return target


def _run(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages, so only what ``where`` holds (and the stdlib) imports.
    code = (
        f"import sys; sys.path.insert(0, {str(where)!r}); "
        f"sys.argv = ['sessionmood', *{list(args)!r}]; "
        "from sessionmood_server.launcher import main; sys.exit(main())"
    )
    return subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=30, cwd="/"
    )


def test_the_command_is_the_launcher() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="sessionmood")
    assert script.value == "sessionmood_server.launcher:main"


def test_without_the_server_extra_the_command_says_what_to_install(client_only: Path) -> None:
    for args in (["serve", "--demo"], ["keys", "list"], []):
        done = _run(client_only, *args)
        assert done.returncode == 1, done.stderr
        assert "pip install 'sessionmood[server]'" in done.stderr
        assert "missing: starlette, uvicorn, orjson" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_client_works_without_the_server_extra(client_only: Path) -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(client_only)!r}); "
        "import importlib.util as u; assert u.find_spec('starlette') is None; "
        "from sessionmood_client import SessionMoodClient, sign_webhook, verify_webhook; "
        "h = sign_webhook(b'{}', 'whsec_' + '00' * 24, 'msg_1'); print(sorted(h))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=30, cwd="/"
    )
    assert done.stdout.strip() == str(["webhook-id", "webhook-signature", "webhook-timestamp"]), (
        done.stderr
    )


def test_with_the_server_the_launcher_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sessionmood_server", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 0 and "serve" in done.stdout
