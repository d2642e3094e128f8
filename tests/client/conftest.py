"""Fixtures of the client tests: no environment, a respx router for the API, and
the sleeps the patched clock records. Each test module makes its own ``client``
(async or sync) with ``support.patch_clock``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from tests.client.support import BASE


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONMOOD_API_KEY", raising=False)
    monkeypatch.delenv("SESSIONMOOD_BASE_URL", raising=False)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def sleeps() -> list[float]:
    return []
