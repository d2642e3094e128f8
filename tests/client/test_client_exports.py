"""The public surface of ``sessionmood_client``, and the sync/async parity it promises."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import sessionmood_client
from sessionmood_client import types as wire
from sessionmood_client._client import AsyncSessionMoodClient, SessionMoodClient
from sessionmood_client._stream import AsyncMoodStream, MoodStream
from sessionmood_client._tracker import AsyncEventTracker, EventTracker

TESTS = Path(__file__).parent

CLIENT_NAMES = {
    "SessionMoodClient",
    "AsyncSessionMoodClient",
    "EventTracker",
    "AsyncEventTracker",
    "MoodStream",
    "AsyncMoodStream",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "__version__",
}
ERROR_NAMES = {
    "SessionMoodError",
    "APIConnectionError",
    "APITimeoutError",
    "APIResponseValidationError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "RateLimitError",
    "InternalServerError",
    "WebhookVerificationError",
}
# The management endpoints' models are wire models (in MODEL_NAMES); these verify deliveries.
WEBHOOK_NAMES = {"verify_webhook", "sign_webhook", "WEBHOOK_SIGNATURE_HEADER", "WebhookEvent"}
# Everything the wire-model module makes public, except the pydantic TypeAdapter,
# which is plumbing (``pydantic.TypeAdapter(Event)`` is one line for a user).
# Request models that only the server parses with stay out as well.
MODEL_NAMES = set(wire.__all__) - {"event_adapter", "WebhookCreateRequest"}


def test_all_is_exactly_the_intended_names() -> None:
    assert (
        set(sessionmood_client.__all__) == CLIENT_NAMES | ERROR_NAMES | MODEL_NAMES | WEBHOOK_NAMES
    )
    assert len(sessionmood_client.__all__) == len(set(sessionmood_client.__all__))


def test_every_exported_name_resolves() -> None:
    for name in sessionmood_client.__all__:
        assert hasattr(sessionmood_client, name), name


def test_no_public_name_leaks_outside_all() -> None:
    # ``types`` and ``signing``, the public modules the server shares, are
    # attributes of the package once imported (as every submodule is) but stay
    # out of ``import *``.
    modules = {"types", "signing"}
    public = {n for n in vars(sessionmood_client) if not n.startswith("_")} - modules
    assert public <= set(sessionmood_client.__all__)
    assert sessionmood_client.types is wire


def test_error_tree() -> None:
    e = sessionmood_client
    for name in ERROR_NAMES:
        assert issubclass(getattr(e, name), e.SessionMoodError), name
    assert issubclass(e.APITimeoutError, e.APIConnectionError)
    for name in ERROR_NAMES - {
        "SessionMoodError",
        "APIConnectionError",
        "APITimeoutError",
        "APIResponseValidationError",
        "APIStatusError",
        "WebhookVerificationError",
    }:
        assert issubclass(getattr(e, name), e.APIStatusError), name
    # The drawing in the module docstring names every class.
    doc = sessionmood_client._exceptions.__doc__ or ""
    for name in ERROR_NAMES:
        assert name in doc, name


def test_ships_py_typed() -> None:
    assert (Path(sessionmood_client.__file__).parent / "py.typed").is_file()


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    }


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"),
    [
        (SessionMoodClient, AsyncSessionMoodClient),
        (EventTracker, AsyncEventTracker),
        (MoodStream, AsyncMoodStream),
    ],
)
def test_sync_and_async_have_the_same_methods(sync_cls: type, async_cls: type) -> None:
    sync_methods = _public_methods(sync_cls)
    async_methods = _public_methods(async_cls)
    # close() is aclose() on the async side, as in httpx.
    if "close" in sync_methods:
        assert "aclose" in async_methods
        sync_methods.pop("close")
        async_methods.pop("aclose")
    assert sync_methods.keys() == async_methods.keys()
    for name, signature in sync_methods.items():
        assert list(signature.parameters) == list(async_methods[name].parameters), name
        # Everything that does I/O is a coroutine on the async side and only there;
        # tracker() and stream_moods() merely build an object (the stream is
        # opened by ``async for``).
        does_io = name not in {"tracker", "stream_moods"}
        assert inspect.iscoroutinefunction(getattr(async_cls, name)) is does_io, name
        assert not inspect.iscoroutinefunction(getattr(sync_cls, name)), name


def _test_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    ]


@pytest.mark.parametrize(
    "async_suite",
    [
        "test_client_async.py",
        "test_client_retries_async.py",
        "test_client_stream_async.py",
        "test_client_tracker_async.py",
    ],
)
def test_sync_and_async_suites_mirror_each_other(async_suite: str) -> None:
    # The sync suites are generated (scripts/unasync.py --check runs in make lint);
    # this holds them to the same tests, in the same order, under the same names.
    async_names = _test_names(TESTS / async_suite)
    assert async_names, "no tests found"
    assert _test_names(TESTS / async_suite.replace("_async.py", "_sync.py")) == async_names
