"""tryon.progress: a reporter installed for a block, reached by calls in its context only."""

from __future__ import annotations

import contextvars
import threading

from tryon import progress


def test_report_outside_reporting_is_a_no_op() -> None:
    assert not progress.is_reporting()
    progress.report_progress(1, 2)  # nothing to call, nothing raised


def test_reports_reach_the_innermost_reporter_until_the_block_ends() -> None:
    outer: list[tuple[int, int]] = []
    inner: list[tuple[int, int]] = []
    with progress.reporting(lambda done, total: outer.append((done, total))):
        progress.report_progress(1, 4)
        with progress.reporting(lambda done, total: inner.append((done, total))):
            progress.report_progress(2, 4)
        progress.report_progress(3, 4)
        assert progress.is_reporting()
    progress.report_progress(4, 4)
    assert outer == [(1, 4), (3, 4)]
    assert inner == [(2, 4)]
    assert not progress.is_reporting()


def test_a_thread_sees_the_reporter_only_through_a_copied_context() -> None:
    events: list[tuple[int, int]] = []
    with progress.reporting(lambda done, total: events.append((done, total))):
        plain = threading.Thread(target=progress.report_progress, args=(1, 2))
        plain.start()
        plain.join()
        copied = threading.Thread(
            target=contextvars.copy_context().run, args=(progress.report_progress, 2, 2)
        )
        copied.start()
        copied.join()
    assert events == [(2, 2)]
