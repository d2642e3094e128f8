"""``sessionmood`` command line: run the server and manage keys."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import logging
import re
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import unquote, unquote_plus

from sessionmood_client.types import PLANS
from sessionmood_server.keys import PLANS as PLAN_INFO
from sessionmood_server.keys import new_key
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage, StorageURLError, open_storage

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


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sessionmood", description="SessionMood server and admin CLI")
    p.add_argument(
        "--database-url",
        help="overrides SESSIONMOOD_DATABASE_URL (default sqlite:///./sessionmood.db)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--access-log", action="store_true", help="log every request (costs ~35%% throughput)"
    )
    serve.add_argument("--log-level", default="info")
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

    purge = sub.add_parser(
        "purge", help="erase sessions past their plan's retention window (7/30/90 days)"
    )
    purge.add_argument(
        "--as-of",
        type=float,
        help="Unix time to treat as now (default: now); for audits and tests",
    )

    keys = sub.add_parser("keys", help="manage API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a tenant and its secret key")
    create.add_argument("--customer", required=True)
    create.add_argument("--email")
    create.add_argument("--plan", choices=PLANS, default="starter")
    revoke = ksub.add_parser("revoke", help="revoke every key whose prefix starts with PREFIX")
    revoke.add_argument("prefix")
    ksub.add_parser("list", help="list keys (prefixes only: keys are stored hashed)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(database_url=args.database_url)
        storage = open_storage(settings.database_url)
    except (StorageURLError, ValueError) as exc:
        print(f"sessionmood: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        host = "127.0.0.1" if args.host in {"0.0.0.0", "::"} else args.host
        public = f"http://{host}:{args.port}"
        origins = tuple(
            dict.fromkeys(
                [public, f"http://127.0.0.1:{args.port}", f"http://localhost:{args.port}"]
            )
        )
        serve_settings = replace(
            settings,
            demo=args.demo and not args.no_demo,
            demo_origins=origins,
            public_url=public,
            demo_key_printed=is_loopback(args.host),
        )
        return _serve(args, serve_settings)
    if args.command == "purge":
        return asyncio.run(_purge(storage, args.as_of))
    return asyncio.run(_keys(args, storage))


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
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from sessionmood_server.app import create_app
    from sessionmood_server.protocol import DeadlineProtocol

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # the lifespan has run (storage open) and sockets listen
                tune_gc()

    if args.access_log:
        logging.getLogger("uvicorn.access").addFilter(RedactKeys())
    print(f"SessionMood listening on http://{args.host}:{args.port}", flush=True)
    config = uvicorn.Config(
        create_app(settings),
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
    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run
        server.run()
    return 0 if server.started else STARTUP_FAILURE


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
