"""``sessionmood`` command line: run the server and manage keys."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import ipaddress
import json
import logging
import re
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus, urlsplit

from sessionmood_client import __version__ as VERSION
from sessionmood_client.types import PLANS
from sessionmood_server.http.request_id import request_id
from sessionmood_server.keys import PLAN_INFO, new_key
from sessionmood_server.settings import Settings, env_public_url
from sessionmood_server.storage import Storage, StorageURLError, open_storage

if TYPE_CHECKING:
    import uvicorn

# Anything shaped like an API key, in any case (a mangled key is still a secret).
_KEY_SHAPED = re.compile(r"(?i)(?:sm|pk)_[0-9a-f]{48}")
# Query parameters whose value is a credential, compared decoded and lower-cased:
# ``?key=``, ``?KEY=``, ``?%6Bey=`` are one parameter to the eye of a server.
_SECRET_PARAMS = {"key", "api_key", "apikey", "x-api-key", "token", "access_token"}
REDACTED = "[redacted]"


def redact_target(target: str) -> str:
    """A request target (path and query, as logged) with every credential
    replaced: values of credential-named parameters, and any key-shaped text,
    also when percent-encoded."""
    path, sep, query = target.partition("?")
    path = "/".join(
        REDACTED if _KEY_SHAPED.search(unquote(seg)) else seg for seg in path.split("/")
    )
    if not sep:
        return path
    pairs = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        plain_name = unquote_plus(name)
        if _KEY_SHAPED.search(plain_name):
            pair = REDACTED
        elif plain_name.strip().lower() in _SECRET_PARAMS or _KEY_SHAPED.search(
            unquote_plus(value)
        ):
            pair = f"{name}={REDACTED}"
        pairs.append(pair)
    return path + sep + "&".join(pairs)


class RedactKeys(logging.Filter):
    """Access-log lines carry the query string, where beacons put their key
    (``?key=pk_...``) and where a mistaken caller may put a secret one: keys
    never reach a log, however they are spelt or encoded."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _KEY_SHAPED.sub(REDACTED, redact_target(a)) if isinstance(a, str) else a
                for a in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = _KEY_SHAPED.sub(REDACTED, record.msg)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``--log-format json``): time, level, logger,
    message and the id of the request being handled (the one a 500 answers
    with), plus method, path, status and client for access-log lines."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id()
        if rid is not None:
            out["request_id"] = rid
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _, status = args
            out.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def json_log_config(level: str) -> dict[str, Any]:
    """uvicorn's and SessionMood's loggers, as JSON lines on stderr."""
    logger = {"handlers": ["json"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": logger,
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": logger,
            "sessionmood": logger,
        },
    }


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def port_number(text: str) -> int:
    """``--port``: a TCP port, 1-65535. (The socket layer would take 99999 as
    99999 - 65536 and listen there, while the banner said 99999.)"""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: ports are 1-65535")
    return port


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sessionmood",
        description="SessionMood server and admin CLI",
        epilog="Try it: sessionmood serve --demo (then open the printed links). "
        "Help on a command: sessionmood COMMAND --help",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    p.add_argument(
        "--database-url",
        help="overrides SESSIONMOOD_DATABASE_URL (default sqlite:///./sessionmood.db)",
    )
    # Not required: a bare ``sessionmood`` prints this help (commands listed)
    # instead of argparse's "the following arguments are required".
    sub = p.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    _serve_parser(sub.add_parser("serve", help="run the HTTP server"))
    purge = sub.add_parser(
        "purge", help="erase sessions past their plan's retention window (7/30/90 days)"
    )
    purge.add_argument(
        "--as-of",
        type=float,
        help="Unix time to treat as now (default: now); for audits and tests",
    )
    _keys_parser(sub.add_parser("keys", help="manage API keys"))
    return p


def _serve_parser(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=port_number, default=8000, help="1-65535 (default 8000)")
    serve.add_argument(
        "--public-url",
        help="where people reach this server, e.g. http://192.168.1.20:8000 when serving "
        "on 0.0.0.0 (printed links, the demo's allowed origin); default: "
        "SESSIONMOOD_PUBLIC_URL, else http://HOST:PORT",
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log every request (costs ~35%% throughput)"
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="json: one JSON object per line, with the request id "
        "(default: SESSIONMOOD_LOG_FORMAT, else text)",
    )
    serve.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-* from --forwarded-allow-ips (behind a load balancer)",
    )
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="also serve the demo shop and create a demo tenant (local try-outs; "
        "prints the demo's secret key when serving on 127.0.0.1)",
    )
    # The default since the demo became opt-in; still accepted.
    serve.add_argument("--no-demo", action="store_true", help=argparse.SUPPRESS)


def _keys_parser(keys: argparse.ArgumentParser) -> None:
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a tenant and its secret key")
    create.add_argument("--customer", required=True)
    create.add_argument("--email")
    create.add_argument("--plan", choices=PLANS, default="starter")
    revoke = ksub.add_parser("revoke", help="revoke every key whose prefix starts with PREFIX")
    revoke.add_argument("prefix")
    ksub.add_parser("list", help="list keys (prefixes only: keys are stored hashed)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        settings = Settings.from_env(database_url=args.database_url)
        storage = open_storage(settings.database_url)
    except (StorageURLError, ValueError) as exc:
        print(f"sessionmood: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        try:
            public, origin = _public_url(args.public_url or env_public_url(), args.host, args.port)
        except ValueError as exc:
            print(f"sessionmood: {exc}", file=sys.stderr)
            return 2
        origins = tuple(
            dict.fromkeys(
                [origin, f"http://127.0.0.1:{args.port}", f"http://localhost:{args.port}"]
            )
        )
        serve_settings = replace(
            settings,
            demo=args.demo and not args.no_demo,
            demo_origins=origins,
            public_url=public,
            demo_key_printed=is_loopback(args.host),
            log_format=args.log_format or settings.log_format,
        )
        return _serve(args, serve_settings)
    if args.command == "purge":
        return asyncio.run(_purge(storage, args.as_of))
    return asyncio.run(_keys(args, storage))


def _public_url(given: str | None, host: str, port: int) -> tuple[str, str]:
    """The base of printed links and its origin: ``given`` (checked), else the
    listening address (127.0.0.1 for a wildcard one)."""
    if given is None:
        shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
        if ":" in shown:
            shown = f"[{shown}]"
        base = f"http://{shown}:{port}"
        return base, base
    parts = urlsplit(given.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"the public URL must be http(s)://host[:port][/path], not {given!r} "
            "(--public-url or SESSIONMOOD_PUBLIC_URL)"
        )
    return given.strip().rstrip("/"), f"{parts.scheme}://{parts.netloc.lower()}"


class PortInUse(Exception):
    """The port is taken: nothing has been changed yet."""


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else happens, so that a
    second server on a busy port changes nothing (the demo keys in a shared
    database above all) before it gives up."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {host!r}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: restart at once after a stop (TIME_WAIT), yet never
    # share a port another process listens on.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(port) from exc
        raise
    sock.set_inheritable(True)
    return sock


def free_port_near(host: str, port: int, tries: int = 20) -> int | None:
    """A port to suggest instead of a busy one: the first of the next few that
    can be bound right now (as ``bind`` would), else any free one."""
    candidates = [*range(port + 1, min(port + tries, 65535) + 1), 0]
    for candidate in candidates:
        try:
            with bind(host, candidate) as sock:
                return int(sock.getsockname()[1])
        except (PortInUse, OSError):
            continue
    return None


async def _purge(storage: Storage, as_of: float | None) -> int:
    from sessionmood_server.services.retention import purge_expired

    await storage.open()
    try:
        n = await purge_expired(storage, time.time() if as_of is None else as_of)
    finally:
        await storage.close()
    print(f"purged {n} expired session(s)")
    return 0


# Python's default collects the youngest GC generation every 700 new objects.
# A request allocates ~100 (events, models, futures) and dozens are in flight,
# so under load each of those collections walks thousands of live request
# objects, several times per request: a tenth of the CPU. Nearly all of them
# die by refcount anyway; the server collects every GC_YOUNG_THRESHOLD objects
# instead (a few MB at most).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Process-wide GC settings for a long-running server, once it has started."""
    # Everything loaded so far (modules, pydantic schemas, routes, the open
    # storage) lives as long as the process: keep the cyclic GC from re-walking
    # it in every full collection, which would otherwise pause requests for
    # milliseconds.
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from uvicorn.config import STARTUP_FAILURE

    sock = _listen(args.host, args.port)
    if sock is None:
        return 2
    _announce(args, settings)
    server = _server(args, settings)
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run
        server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


def _listen(host: str, port: int) -> socket.socket | None:
    """The bound socket, or None once the reason it cannot be is printed."""
    try:
        return bind(host, port)
    except PortInUse:
        other = free_port_near(host, port)
        print(
            f"sessionmood: port {port} on {host} is already in use "
            "(another SessionMood, or another server). Nothing was changed.\n"
            + (
                f"  Port {other} is free: make run PORT={other}  or  "
                f"sessionmood serve --port {other}"
                if other is not None
                else "  Use another port: make run PORT=...  or  sessionmood serve --port ..."
            ),
            file=sys.stderr,
        )
    except OSError as exc:
        print(f"sessionmood: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
    return None


def _announce(args: argparse.Namespace, settings: Settings) -> None:
    """Where the server listens and where it is reached, on stdout."""
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"SessionMood listening on http://{shown}:{args.port}", flush=True)
    if settings.public_url != f"http://{shown}:{args.port}":
        print(f"  reached at {settings.public_url}", flush=True)
    if args.host in {"0.0.0.0", "::"} and env_public_url() is None and not args.public_url:
        print(
            "  other machines: set --public-url (or SESSIONMOOD_PUBLIC_URL) to the address "
            "they use, for the links below and the demo's allowed origin",
            flush=True,
        )


def _server(args: argparse.Namespace, settings: Settings) -> uvicorn.Server:
    """uvicorn, serving the app with our protocol (and the GC tuned once it has started)."""
    import uvicorn

    from sessionmood_server.app import create_app
    from sessionmood_server.protocol import DeadlineProtocol

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # the lifespan has run (storage open) and sockets listen
                tune_gc()

    log_config: dict[str, Any] | None = None
    if settings.log_format == "json":
        log_config = json_log_config(args.log_level)
    config = uvicorn.Config(
        create_app(settings),
        log_config=log_config if log_config is not None else uvicorn.config.LOGGING_CONFIG,
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        http=DeadlineProtocol,
        log_level=args.log_level,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        # No "server: uvicorn" banner: it only helps whoever scans for versions.
        server_header=False,
        # Live streams (SSE) never end on their own: give them 5 s, then close.
        timeout_graceful_shutdown=5,
    )
    if args.access_log:
        # Whatever the log format: keys never reach a log line.
        logging.getLogger("uvicorn.access").addFilter(RedactKeys())
    return Server(config)


async def _keys(args: argparse.Namespace, storage: Storage) -> int:
    await storage.open()
    try:
        now = time.time()
        if args.keys_command == "create":
            raw = new_key("secret")
            await storage.create_tenant_key(args.customer, args.email, args.plan, raw, now)
            print(raw)
            print(
                f"created {args.plan} key for {args.customer!r} "
                f"({PLAN_INFO[args.plan].limits_text}); store it now: it is not shown again",
                file=sys.stderr,
            )
            return 0
        if args.keys_command == "revoke":
            if len(args.prefix) < 6:
                print("sessionmood: give at least 6 characters of the key prefix", file=sys.stderr)
                return 2
            n = await storage.revoke_keys(args.prefix, now)
            print(f"revoked {n} key(s)")
            return 0 if n else 1
        for k in await storage.list_keys():
            created = datetime.fromtimestamp(k.created_at, UTC).strftime("%Y-%m-%d %H:%M")
            status = "revoked" if k.revoked_at else "active"
            print(f"{k.prefix}…\t{k.kind}\t{k.plan}\t{status}\t{created}\t{k.customer}")
        return 0
    finally:
        await storage.close()


if __name__ == "__main__":
    sys.exit(main())
