"""Progress of the current stage call: long-running backends report steps, whoever waits listens.

A backend calls :func:`report_progress` between its steps (FullInpaint once per denoising step, the lite
inpainter at its sub-steps). Nothing happens unless a caller up the stack installed a reporter with
:func:`reporting`; the reporter lives in a :class:`~contextvars.ContextVar`, so it reaches the backend when
the backend runs in the caller's thread (or in a thread started with a copy of its context):

    with progress.reporting(lambda done, total: print(f"{done}/{total}")):
        pipeline.run(person, garment)

Over gRPC the same holds end to end: :class:`tryon.client.InpaintClient` sees the active reporter, calls
the server-streaming ``Inpaint/InpaintStream`` RPC, and forwards each progress message to
:func:`report_progress` in the caller's context, while the inpaint servicer installs a reporter around the
backend that streams every report back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: ``(steps done, total steps)`` of the current stage call; ``0 <= done <= total``.
ProgressFn = Callable[[int, int], None]

_reporter: ContextVar[ProgressFn | None] = ContextVar("tryon_progress_reporter", default=None)


@contextmanager
def reporting(fn: ProgressFn) -> Iterator[None]:
    """Install ``fn`` as the progress reporter of the current context for the duration of the block."""
    token = _reporter.set(fn)
    try:
        yield
    finally:
        _reporter.reset(token)


def is_reporting() -> bool:
    """Whether a reporter is installed: a caller may then choose a path that can report progress."""
    return _reporter.get() is not None


def report_progress(done: int, total: int) -> None:
    """Tell the active reporter that ``done`` of ``total`` steps are finished; a no-op without one."""
    fn = _reporter.get()
    if fn is not None:
        fn(done, total)
