"""Native libraries' log lines (MediaPipe, TensorFlow Lite, absl) kept off stderr unless asked for.

MediaPipe's C++ code logs through absl before anything could configure it ("All log messages before
absl::InitializeLog() is called are written to STDERR", "Created TensorFlow Lite XNNPACK delegate", feedback
manager and landmark projection warnings, at load and on the first inferences); no environment variable
silences that. So the entrypoints (``tryon`` and the stage services) route file descriptor 2 through a pipe
for the process's life: lines in those libraries' formats are dropped unless asked for, and every other
line (our own logs, tracebacks) passes through at once, unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

#: absl/glog lines ("W0000 00:00:17.. 123 file.cc:114] ..."), and TF Lite's and absl's bare prefixes.
NATIVE_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\]"
    rb"|INFO: Created TensorFlow Lite"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)

_lock = threading.Lock()  # one routing at a time: fd 2 is process-wide


@contextlib.contextmanager
def routed_native_logs(*, keep_native: bool = False) -> Iterator[None]:
    """Route what is written to fd 2 inside the block, dropping native libraries' lines unless
    ``keep_native`` (``tryon -v``, ``TRYON_LOG_LEVEL=DEBUG``)."""
    with _lock:
        sys.stderr.flush()
        original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        forwarder = threading.Thread(
            target=_forward, args=(read_end, original, keep_native), name="native-logs", daemon=True
        )
        forwarder.start()
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(original, 2)  # closes the pipe's last write end: the forwarder reads to its end
            forwarder.join(timeout=5)
            os.close(original)


def _forward(read_end: int, destination: int, keep_native: bool) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if keep_native or not NATIVE_LINE.match(line):
                    os.write(destination, line + b"\n")
        if pending and (keep_native or not NATIVE_LINE.match(pending)):
            os.write(destination, pending)
