"""Where the PostgreSQL tests find a database without being told.

In this order:

1. ``SESSIONMOOD_TEST_DATABASE_URL``, as given (``off`` runs none of them);
2. a throwaway cluster of this run's own, when ``initdb`` and ``pg_ctl`` are
   on PATH or in Debian's ``/usr/lib/postgresql/<version>/bin`` (not on PATH
   there): a temporary directory, a free port on 127.0.0.1, no fsync, removed
   when the run ends. initdb refuses to run as root, so as root it runs as the
   ``postgres`` user (or ``nobody``);
3. a server answering on 127.0.0.1:5432 as user ``postgres`` without a
   password, in a database of this run's own, dropped when the run ends.

With none of them the tests skip, with the reason in one line of the summary
(see ``tests/conftest.py``); with ``SESSIONMOOD_REQUIRE_POSTGRES=1`` (CI) they
fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

URL_VAR = "SESSIONMOOD_TEST_DATABASE_URL"
REQUIRE_VAR = "SESSIONMOOD_REQUIRE_POSTGRES"
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
DEFAULT_SERVER = ("127.0.0.1", 5432)
SKIP_PREFIX = "PostgreSQL tests skipped: "


@dataclass(frozen=True)
class Found:
    """A database URL and where it came from, or None and why there is none."""

    url: str | None
    how: str


def _tools(path: str, bindirs: str) -> tuple[str, str] | None:
    """initdb and pg_ctl of one installation: PATH first, then the newest
    version under ``bindirs``."""
    initdb, pg_ctl = shutil.which("initdb", path=path), shutil.which("pg_ctl", path=path)
    if initdb and pg_ctl:
        return initdb, pg_ctl

    def version(d: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(d).parent.name))

    for d in sorted(glob.glob(bindirs), key=version, reverse=True):
        if os.access(Path(d) / "initdb", os.X_OK) and os.access(Path(d) / "pg_ctl", os.X_OK):
            return str(Path(d) / "initdb"), str(Path(d) / "pg_ctl")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A PostgreSQL cluster in a temporary directory, trusting local connections."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self.user = pwd.getpwnam(name)
                    break
            if self.user is None:
                raise RuntimeError("initdb refuses root and there is no postgres or nobody user")
        self.dir = Path(tempfile.mkdtemp(prefix="sessionmood-pg-"))
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = self.dir / "data"
        self.port = 0

    def _run(self, *args: str) -> None:
        as_user: dict[str, Any] = {}
        if self.user is not None:
            as_user = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        # Our PG* variables (a PGDATA, a PGPORT) are not the cluster's.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        done = subprocess.run(
            args, cwd=self.dir, env=env, capture_output=True, text=True, timeout=120, **as_user
        )
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"{Path(args[0]).name} failed: {last[0]}")

    def start(self) -> str:
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-locale", "--no-sync")  # fmt: skip
        # Throwaway data: no fsync. A port taken between the pick and the
        # bind (another run) gets another try.
        for attempt in range(3):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"),
                          "-o", options, "-w", "-t", "60", "start")  # fmt: skip
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def _in_thread(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to the end from any thread, even one whose event loop
    is running (Playwright's sync API keeps one on the main thread)."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(asyncio.run(make()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


def _answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


async def _admin(url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _server_database(address: tuple[str, int]) -> tuple[str, Callable[[], None]]:
    """A database of this run's own on the server at ``address``, and its removal."""
    host, port = address
    admin = f"postgresql://postgres@{host}:{port}/postgres"
    name = "sessionmood_test_" + secrets.token_hex(4)
    _in_thread(lambda: _admin(admin, f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with contextlib.suppress(Exception):
            _in_thread(lambda: _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return f"postgresql://postgres@{host}:{port}/{name}", drop


def find(
    environ: Mapping[str, str],
    cleanups: list[Callable[[], None]],
    *,
    bindirs: str = DEBIAN_BINDIRS,
    server: tuple[str, int] = DEFAULT_SERVER,
) -> Found:
    """The test database (see the module docstring); what it started goes
    into ``cleanups``."""
    given = environ.get(URL_VAR, "")
    if given.lower() == "off":
        return Found(None, f"{URL_VAR}=off")
    if given:
        return Found(given, URL_VAR)
    problems: list[str] = []
    tools = _tools(environ.get("PATH", os.defpath), bindirs)
    if tools is None:
        problems.append(f"no initdb/pg_ctl on PATH or in {DEBIAN_BINDIRS}")
    else:
        try:
            cluster = Cluster(*tools)
        except (RuntimeError, OSError) as exc:
            problems.append(f"no throwaway cluster ({exc})")
        else:
            cleanups.append(cluster.remove)
            try:
                url = cluster.start()
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                problems.append(f"no throwaway cluster ({exc})")
            else:
                return Found(url, f"a throwaway cluster ({tools[1]}, port {cluster.port})")
    where = f"{server[0]}:{server[1]}"
    if not _answers(server):
        problems.append(f"nothing answers on {where}")
    else:
        try:
            url, drop = _server_database(server)
        except Exception as exc:  # authentication, permissions, no asyncpg...
            first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
            problems.append(f"the server on {where} refused user postgres ({first[0]})")
        else:
            cleanups.append(drop)
            return Found(url, f"the server on {where}, database {url.rsplit('/', 1)[1]}")
    return Found(None, "; ".join(problems) + f": set {URL_VAR}=postgresql://user@host:port/db")


_found: Found | None = None
_cleanups: list[Callable[[], None]] = []


def database() -> Found:
    """This run's test database, looked for once."""
    global _found
    if _found is None:
        _found = find(os.environ, _cleanups)
    return _found


def release() -> None:
    """Stop and remove what ``database`` started (the end of the run)."""
    while _cleanups:
        _cleanups.pop()()
