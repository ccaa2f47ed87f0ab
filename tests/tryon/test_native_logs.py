"""Native libraries' log lines are routed away from stderr while models load; everything else passes."""

from __future__ import annotations

import os

import pytest

from tryon.native_logs import routed_native_logs

NATIVE = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"W0000 00:00:1796164076.717834   31128 inference_feedback_manager.cc:114] Feedback manager requires\n"
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
)


def test_native_lines_are_dropped_and_others_pass(capfd: pytest.CaptureFixture[str]) -> None:
    with routed_native_logs():
        os.write(2, NATIVE)
        os.write(2, b"Traceback (most recent call last):\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "Traceback (most recent call last):\nafter\n"


def test_native_lines_are_kept_at_debug(capfd: pytest.CaptureFixture[str]) -> None:
    with routed_native_logs(keep_native=True):
        os.write(2, NATIVE)
    assert capfd.readouterr().err == NATIVE.decode()
