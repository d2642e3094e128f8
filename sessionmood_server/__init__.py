"""SessionMood server: a Starlette app that turns behavioural events into a current mood."""

from sessionmood_server.app import create_app
from sessionmood_server.routes import VERSION as __version__

__all__ = ["__version__", "create_app"]
