"""Shared fixtures: an in-process app, a real uvicorn server on a free port, and
the Chromium launch recipe for Playwright on these machines."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from sessionmood_server.app import create_app
from sessionmood_server.settings import Settings
from tests import database

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A real ``sessionmood serve`` process. ``restart()`` keeps the database."""

    database_url: str
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # e.g. ["--demo"]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        env = {
            **os.environ,
            "SESSIONMOOD_DATABASE_URL": self.database_url,
            "SESSIONMOOD_ADMIN_TOKEN": ADMIN_TOKEN,
            **self.env,
        }
        # The child keeps its own copy of the log descriptor; ours closes at once.
        with open(self.log_path or os.devnull, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sessionmood_server",
                    "serve",
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy in time")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flush. What a crash looks like."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def new_key(self, plan: str = "starter", customer: str = "test") -> str:
        # As the operator: self-service sign-ups are limited per client address,
        # and the suite creates hundreds of tenants from 127.0.0.1.
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        r = httpx.post(
            self.base_url + "/v1/keys/generate",
            json={"customer_name": customer, "plan": plan},
            headers=headers,
        )
        r.raise_for_status()
        return str(r.json()["api_key"])


def _start_live(tmp: Path, name: str, **env: str) -> LiveServer:
    server = LiveServer(
        database_url=f"sqlite:///{tmp / (name + '.db')}", env=env, log_path=tmp / f"{name}.log"
    )
    server.start()
    return server


# Storage backends a live-server test runs on. PostgreSQL runs on the database
# of tests/database.py (each server group on a schema of its own), skips saying
# why when there is none, and fails then with SESSIONMOOD_REQUIRE_POSTGRES=1.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def backend_servers(
    backend: str, tmp: Path, name: str, replicas: int = 1, **env: str
) -> Iterator[list[LiveServer]]:
    """``replicas`` real servers sharing one fresh database of ``backend``
    (several replicas need PostgreSQL); stopped and dropped afterwards."""
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            assert replicas == 1, "several replicas need PostgreSQL"
            url = f"sqlite:///{tmp / (name + '.db')}"
        else:
            from tests.test_postgres import fresh_schema_sync

            url = stack.enter_context(fresh_schema_sync())
        servers = [
            LiveServer(database_url=url, env=env, log_path=tmp / f"{name}-{n}.log")
            for n in range(replicas)
        ]
        for server in servers:
            stack.callback(server.stop)
            server.start()
        yield servers


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real uvicorn server on a free port for the whole run (own SQLite file)."""
    server = _start_live(tmp_path_factory.mktemp("live"), "live")
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real server of the test's own, for tests that kill or restart it."""
    server = _start_live(tmp_path, "fresh")
    yield server
    server.stop()


@pytest.fixture
def api_key(live_server: LiveServer) -> str:
    """A fresh starter key (its own tenant) on the shared live server."""
    return live_server.new_key()


# -- in-process -------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", admin_token=ADMIN_TOKEN)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app in-process (lifespan run), raising nothing: we assert on responses."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def make_key(client: TestClient, plan: str = "starter") -> str:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # see LiveServer.new_key
    r = client.post(
        "/v1/keys/generate", json={"customer_name": "Acme", "plan": plan}, headers=headers
    )
    assert r.status_code == 201, r.text
    return str(r.json()["api_key"])


@pytest.fixture
def growth(client: TestClient) -> dict[str, str]:
    """Headers with a growth-plan secret key (webhooks need growth or pro)."""
    return {"X-Api-Key": make_key(client, "growth")}


@pytest.fixture
def key(client: TestClient) -> str:
    return make_key(client)


@pytest.fixture
def auth(key: str) -> dict[str, str]:
    return {"X-Api-Key": key}


# -- Playwright (Debian's Chromium; downloads are impossible here) -----------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Without this Chromium tries DNS look-ups that fail on these machines.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    if os.path.exists(CHROMIUM):
        args["executable_path"] = CHROMIUM
    return args


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    return live_server.base_url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running on the
    main thread for the rest of the session, after which asyncio.run() (the CLI,
    anyio tests) cannot start one."""
    items.sort(key=lambda item: "tests/e2e/" in item.nodeid.replace("\\", "/"))
    # The PostgreSQL tests' database, found or started now (before any test
    # runs, and only when some will use it) and removed at the end of the run.
    if any(item.get_closest_marker("postgres") for item in items):
        config.add_cleanup(database.release)
        database.database()


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    found = database._found
    if found is None:
        return []
    return [
        f"PostgreSQL tests: {found.how}" if found.url else f"PostgreSQL tests: none, {found.how}"
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Every PostgreSQL test skipped for want of a database, under one line of
    the summary (``-ra`` prints one per test location otherwise)."""
    report = yield
    longrepr = report.longrepr
    if (
        report.skipped
        and call.excinfo is not None
        and isinstance(longrepr, tuple)
        and str(longrepr[2]).removeprefix("Skipped: ").startswith(database.SKIP_PREFIX)
    ):
        # Where the skip was raised (postgres_url), not each test's own place.
        ours = [e for e in call.excinfo.traceback if "_pytest" not in Path(e.path).parts]
        report.longrepr = (str(ours[-1].path), ours[-1].lineno + 1, longrepr[2])
    return report
