"""End-to-end throughput and latency of the whole system on one machine, optionally under faults.

Starts the stack exactly as `make up` does (tryon.localstack; free ports, a temporary run directory), submits
N jobs through the front door (nginx when installed) with bounded concurrency, follows each to its final
state, and prints p50 / p95 latency (submit -> final state) and jobs per minute. With --faults, the e2e
suite's fault schedule runs during the load (a stage service and the worker killed with -9 and restarted,
Redis restarted, the storage unavailable for 10 s).

    .venv/bin/python bench/bench_e2e.py --jobs 200 --concurrency 16 [--faults]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.conftest import FAST_RECOVERY_ENV, GATEWAY_ENV
from tests.e2e.load import fault_schedule, run_load
from tryon.local_services import free_port
from tryon.localstack import LocalStack, plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--faults", action="store_true", help="run the fault schedule during the load")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs) afterwards")
    args = parser.parse_args()

    run_dir = Path(tempfile.mkdtemp(prefix="tryon-bench-e2e-"))
    # The e2e suite's settings: no per-client limits; short job limits so a killed worker's jobs come back
    # after 50 s (docs/OPERATIONS.md), and the same settings for the clean run, so the figures compare.
    env = {"gateway": {**GATEWAY_ENV, **FAST_RECOVERY_ENV}, "worker": dict(FAST_RECOVERY_ENV)}
    stack = LocalStack(plan(run_dir, free_port(), env=env, supervise=False))  # faults restart on schedule
    try:
        took = stack.up(timeout_s=90)
        front = "nginx" if stack.config.nginx else "gateway"
        print(f"stack ready in {took:.1f} s at {stack.config.url} (front door: {front}; logs in {run_dir})")
        run_load(stack.config.url, 4, 4)  # warm-up: first calls of every process
        report = run_load(
            stack.config.url,
            args.jobs,
            args.concurrency,
            faults=fault_schedule(stack) if args.faults else None,
        )
        print(report.summary())
    finally:
        stack.down()
    if not args.keep:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
