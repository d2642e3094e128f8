"""The ``sessionmood`` command's entry point, importable with the standard
library alone.

``pip install sessionmood`` (the client, as docs/python-client.md says) installs
this command too, without the server's dependencies: the server is the
``[server]`` extra. Rather than a ``ModuleNotFoundError`` traceback, the command
then says what to install. One distribution with an extra, not two
distributions: the client and the server share the wire models and the
version, and one package keeps them in step.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

# What the server needs beyond the client's own dependencies (the [server] extra).
SERVER_MODULES = ("starlette", "uvicorn", "orjson")
INSTALL_HINT = "pip install 'sessionmood[server]'"


def missing_modules() -> list[str]:
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    missing = missing_modules()
    if missing:
        print(
            "sessionmood: this command runs the SessionMood server, which is not "
            f"installed here (missing: {', '.join(missing)}).\n"
            f"  Install it with: {INSTALL_HINT}\n"
            "  (the Python client, sessionmood_client, works without it)",
            file=sys.stderr,
        )
        return 1
    from sessionmood_server.cli import main as cli_main

    return cli_main(argv)
