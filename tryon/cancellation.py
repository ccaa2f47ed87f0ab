"""Abandoning work whose caller has gone: the serving layer says how to tell, long-running backends ask.

The gRPC interceptor runs each call inside :func:`cancellable` with a check of its deadline and
connection; a backend that loops for seconds (SDXL's denoising steps) calls :func:`raise_if_cancelled`
between iterations, so an expired call stops holding the GPU. Outside a call (the CLI, tests) nothing is
ever cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_is_cancelled: ContextVar[Callable[[], bool] | None] = ContextVar("tryon_is_cancelled", default=None)


class CallCancelled(Exception):
    """The caller's deadline passed or it cancelled the call: the work was abandoned part-way."""


@contextmanager
def cancellable(is_cancelled: Callable[[], bool]) -> Iterator[None]:
    token = _is_cancelled.set(is_cancelled)
    try:
        yield
    finally:
        _is_cancelled.reset(token)


def raise_if_cancelled() -> None:
    check = _is_cancelled.get()
    if check is not None and check():
        raise CallCancelled("the caller's deadline passed or it cancelled the call; the work was abandoned")
