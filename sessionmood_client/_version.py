"""The client's version, sent in the User-Agent header."""

# Kept in step with ``project.version`` in pyproject.toml by hand: the package
# may run from a source checkout where importlib.metadata knows nothing of it.
__version__ = "1.0.0"
