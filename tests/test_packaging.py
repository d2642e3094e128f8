"""The package as users get it: built as a wheel (directly, and from the sdist,
which must give the same wheel), installed into a fresh virtual environment
outside the checkout, and serving everything the checkout serves (the tracker,
its types, the dashboard, /docs, the demo shop) from inside the package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow

IGNORED = "Package would be ignored"


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    return out


def _source_tree(into: Path) -> Path:
    """The files of a fresh clone (tracked, plus new ones not ignored), so
    that no build/ or egg-info left in the checkout gets into the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # not a deleted one, nor a submodule
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


def _contents(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as z:
        return {name: z.read(name) for name in z.namelist()}


@dataclass
class Built:
    wheel: Path
    from_sdist: Path
    logs: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the source tree to build is unknown")
    tmp = tmp_path_factory.mktemp("build")
    src = _source_tree(tmp / "src")
    build = [sys.executable, "-m", "build", "--outdir"]
    logs = _run(*build, tmp / "wheel", "--wheel", src, cwd=tmp)
    logs += _run(*build, tmp / "sdist", "--sdist", src, cwd=tmp)
    (sdist,) = (tmp / "sdist").glob("*.tar.gz")
    logs += _run(*build, tmp / "from-sdist", "--wheel", sdist, cwd=tmp)
    (wheel,) = (tmp / "wheel").glob("*.whl")
    (from_sdist,) = (tmp / "from-sdist").glob("*.whl")
    return Built(wheel, from_sdist, logs)


def test_the_build_prints_no_ignored_package_warnings(built: Built) -> None:
    # Data directories not listed as packages each print a 40-line warning.
    assert IGNORED not in built.logs


def test_the_sdist_builds_the_same_wheel(built: Built) -> None:
    direct, via_sdist = _contents(built.wheel), _contents(built.from_sdist)
    assert sorted(direct) == sorted(via_sdist)
    assert [n for n in direct if direct[n] != via_sdist[n]] == []


def test_the_wheel_holds_what_the_server_serves(built: Built) -> None:
    names = set(_contents(built.wheel))
    for shipped in [
        "sessionmood_server/static/tracker.js",
        "sessionmood_server/static/tracker.d.ts",
        "sessionmood_server/dashboard/index.html",
        "sessionmood_server/reference/index.html",
        "sessionmood_server/demo/index.html",
        "sessionmood_server/demo/shop.css",
        "sessionmood_server/storage/sqlite/migrations/001.sql",
    ]:
        assert shipped in names, shipped
    assert not any(n.startswith(("tests/", "examples/", "static/")) for n in names)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment, outside the checkout, with the wheel and
    its server extra installed the way docs/deploy.md says."""
    tmp = tmp_path_factory.mktemp("installed")
    assert ROOT not in tmp.parents
    venv = tmp / "venv"
    # The base interpreter, not this virtual environment's: nothing of the
    # checkout's editable install can leak in.
    base = Path(sys.base_prefix) / "bin" / Path(sys.executable).name
    _run(base if base.exists() else sys.executable, "-m", "venv", venv, cwd=tmp)
    env = _clean_env()
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", f"{built.wheel}[server]",
         cwd=tmp, env=env)  # fmt: skip
    return venv


def _clean_env() -> dict[str, str]:
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Path) -> None:
    out = _run(installed / "bin" / "python", "-c",
               "import sessionmood_server.app as a, sessionmood_server.http.site as s; "
               "print(a.__file__); print(s.STATIC_DIR); print(s.DEMO_DIR)",
               cwd=installed, env=_clean_env())  # fmt: skip
    for line in out.split():
        path = Path(line)
        assert installed in path.parents, line
        assert ROOT not in path.parents, line


@pytest.fixture(scope="module")
def served(installed: Path) -> Iterator[str]:
    """``sessionmood serve --demo`` of the installed package, run from outside the checkout."""
    port = free_port()
    home = installed.parent
    env = {**_clean_env(), "SESSIONMOOD_DATABASE_URL": f"sqlite:///{home / 'served.db'}"}
    with open(home / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [installed / "bin" / "sessionmood", "serve", "--demo", "--port", str(port)],
            cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (home / "serve.log").read_text()
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (home / "serve.log").read_text()
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("path", "file"),
    [
        ("/static/tracker.js", "static/tracker.js"),
        ("/static/tracker.d.ts", "static/tracker.d.ts"),
        ("/dashboard/", "sessionmood_server/dashboard/index.html"),
        ("/dashboard/dashboard.js", "sessionmood_server/dashboard/dashboard.js"),
        ("/docs/", "sessionmood_server/reference/index.html"),
        ("/docs/reference.js", "sessionmood_server/reference/reference.js"),
        ("/demo/shop.css", "examples/demo_site/shop.css"),
        ("/demo/shop.js", "examples/demo_site/shop.js"),
    ],
)
def test_the_installed_server_serves_the_repository_files(
    served: str, path: str, file: str
) -> None:
    r = httpx.get(served + path)
    assert r.status_code == 200, (path, r.text[:200])
    assert r.content == (ROOT / file).read_bytes(), path


def test_the_installed_server_serves_the_demo_shop_and_the_docs_assets(served: str) -> None:
    r = httpx.get(served + "/demo/")
    assert r.status_code == 200, r.text[:200]
    m = re.search(r'data-api-key="(pk_\w+)"', r.text)
    assert m is not None, r.text[:500]
    page = (ROOT / "examples/demo_site/index.html").read_text()
    assert r.text == page.replace("{{SESSIONMOOD_PUBLISHABLE_KEY}}", m.group(1))
    # Swagger UI's own files, from its package in the fresh environment.
    assert httpx.get(served + "/docs/assets/swagger-ui-bundle.js").status_code == 200


# -- the examples, in an environment with only the server extra ------------------
# What `make run` installs (`pip install -e '.[server]'`) and what docs/deploy.md
# installs: neither has the dev extra (pytest, Playwright). Every example must
# run there.


def _example(venv: Path, name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv / "bin" / "python", ROOT / "examples" / name, *args],
        env={**_clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=venv.parent,
    )


@pytest.mark.parametrize("name", ["backend_sync.py", "backend_async.py"])
def test_the_backend_examples_run_with_the_server_extra_only(
    installed: Path, served: str, name: str
) -> None:
    done = _example(installed, name, SESSIONMOOD_BASE_URL=served)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_the_stream_example_runs_with_the_server_extra_only(installed: Path, served: str) -> None:
    # A revoked-looking key: the example starts, reaches the server and says why it stops.
    done = _example(
        installed,
        "stream_moods.py",
        SESSIONMOOD_BASE_URL=served,
        SESSIONMOOD_API_KEY="sm_" + "0" * 48,
    )
    assert done.returncode == 1 and done.stderr.startswith("error:"), done.stdout + done.stderr


def test_the_webhook_receiver_runs_with_the_server_extra_only(installed: Path) -> None:
    port = free_port()
    log_path = installed.parent / "receiver.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [installed / "bin" / "uvicorn", "--app-dir", ROOT / "examples",
             "webhook_receiver:app", "--port", str(port)],
            env={**_clean_env(), "SESSIONMOOD_WEBHOOK_SECRET": "whsec_" + "00" * 24},
            cwd=installed.parent, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/sessionmood", content=b"{}")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        # Unsigned: refused, as it must be.
        assert r.status_code == 400 and r.text.startswith("rejected:"), r.text
    finally:
        proc.terminate()
        proc.wait(10)
