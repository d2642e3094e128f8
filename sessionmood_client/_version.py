"""The version of the SessionMood distribution: the client's User-Agent, the
server's /health and OpenAPI document, and (read by setuptools) the package's own."""

__version__ = "1.0.0"
