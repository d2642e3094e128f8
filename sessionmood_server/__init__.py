"""SessionMood server: a Starlette app that turns behavioural events into a current mood.

Importing this package (or its pure parts, such as ``sessionmood_server.engine``)
loads no web framework: ``create_app`` is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionmood_client import __version__

if TYPE_CHECKING:
    from sessionmood_server.app import create_app

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from sessionmood_server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
