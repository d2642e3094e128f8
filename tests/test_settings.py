"""Settings from the environment: explicit values, defaults, and clear refusals."""

from __future__ import annotations

import pytest

from sessionmood_server.cli import main
from sessionmood_server.settings import Settings, SettingsError

WEBHOOK_VARS = {
    "SESSIONMOOD_WEBHOOK_TIMEOUT_S": ("webhook_timeout_s", "2.5", 2.5),
    "SESSIONMOOD_WEBHOOK_CONCURRENCY": ("webhook_concurrency", "7", 7),
    "SESSIONMOOD_WEBHOOK_MAX_IN_FLIGHT": ("webhook_max_in_flight", "250", 250),
}


def test_webhook_limits_default_and_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in WEBHOOK_VARS:
        monkeypatch.delenv(name, raising=False)
    defaults = Settings.from_env()
    assert (
        defaults.webhook_timeout_s,
        defaults.webhook_concurrency,
        defaults.webhook_max_in_flight,
    ) == (10.0, 4, 100)
    for name, (_, raw, _) in WEBHOOK_VARS.items():
        monkeypatch.setenv(name, raw)
    settings = Settings.from_env()
    for attribute, _, value in WEBHOOK_VARS.values():
        assert getattr(settings, attribute) == value


@pytest.mark.parametrize("name", list(WEBHOOK_VARS))
@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "ten", "1.5e"])
def test_unusable_webhook_limits_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingsError, match=name):
        Settings.from_env()


def test_the_cli_says_which_variable_is_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESSIONMOOD_WEBHOOK_CONCURRENCY", "0")
    assert main(["keys", "list"]) == 2
    assert "SESSIONMOOD_WEBHOOK_CONCURRENCY must be a positive number" in capsys.readouterr().err
