from __future__ import annotations

import pytest
from pydantic import ValidationError

from tryon.settings import StageSettings, load_stage_settings
from tryon.types import BackendKind


def test_settings_come_from_tryon_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRYON_BACKEND", "lite")
    monkeypatch.setenv("TRYON_MAX_QUEUE", "3")
    monkeypatch.setenv("TRYON_MODELS__DEVICE", "cpu")
    monkeypatch.setenv("TRYON_MODELS__SEGFORMER_MODEL", "/models/segformer")
    settings = StageSettings()
    assert settings.backend is BackendKind.LITE
    assert settings.max_queue == 3
    assert settings.models.device == "cpu"
    assert settings.models.segformer_model == "/models/segformer"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRYON_BACKEND", "turbo"),
        ("TRYON_MAX_QUEUE", "-1"),
        ("TRYON_MAX_MESSAGE_MB", "0"),
        ("TRYON_PORT", "70000"),
    ],
)
def test_bad_values_fail_fast(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        StageSettings()


def test_explicit_overrides_win_and_none_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRYON_BACKEND", "full")
    assert load_stage_settings(backend="lite").backend is BackendKind.LITE
    assert load_stage_settings(backend=None).backend is BackendKind.FULL
