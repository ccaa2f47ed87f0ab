"""``tryon-worker`` / ``python -m orchestrator``: the Celery worker with the settings' pool size.

Extra arguments go to ``celery worker`` unchanged (e.g. ``--hostname gpu-1@%h``).
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> None:
    from orchestrator import app
    from orchestrator import worker_settings as settings

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s [%(processName)s] %(message)s"
    )
    args = [
        "worker",
        f"--loglevel={settings.log_level}",
        f"--concurrency={settings.concurrency}",
        "--pool=prefork",
        "--without-gossip",
        "--without-mingle",
        *(sys.argv[1:] if argv is None else argv),
    ]
    app.worker_main(args)


if __name__ == "__main__":
    main()
