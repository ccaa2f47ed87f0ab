"""A throwaway stage for testing the runtime: it serves the Blend API and echoes the person image back.

Run as a script it serves on a free port and prints ``PORT <n>`` (used by the SIGTERM test).
"""

from __future__ import annotations

import sys
import threading
import time

import grpc

from tryon import protocol
from tryon.cancellation import CallCancelled, raise_if_cancelled
from tryon.runtime import ServiceBinding, StageServer, configure_logging, exit_process, serve
from tryon.settings import StageSettings
from tryon.types import BackendInfo, StageInputError
from tryon.v1 import blend_pb2, blend_pb2_grpc


class EchoBackend:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.allow_setup = threading.Event()
        self.allow_setup.set()
        self.release = threading.Event()  # cleared by tests that need calls to block
        self.release.set()
        self.running = threading.Semaphore(0)  # one release per call that reached the backend
        self.cancelled = threading.Event()  # set when a call saw its caller had gone

    def setup(self) -> None:
        self.allow_setup.wait()

    def run(self, person: bytes) -> bytes:
        self.running.release()
        # Wait like a long-running model: in short steps, checking between them whether the caller left.
        while not self.release.wait(0.01):
            try:
                raise_if_cancelled()
            except CallCancelled:
                self.cancelled.set()
                raise
        time.sleep(self.delay_s)
        return person

    def info(self) -> BackendInfo:
        return BackendInfo(stage="echo", backend="lite", device="cpu")


class EchoServicer(blend_pb2_grpc.BlendServicer):
    def __init__(self, backend: EchoBackend) -> None:
        self.backend = backend

    def Blend(
        self, request: blend_pb2.BlendRequest, context: grpc.ServicerContext
    ) -> blend_pb2.BlendResponse:
        if not request.person.data:
            raise StageInputError("person: empty image", field="person")
        return blend_pb2.BlendResponse(
            image=request.person.__class__(data=self.backend.run(request.person.data))
        )

    def GetInfo(self, request: object, context: grpc.ServicerContext) -> object:
        return protocol.info_to_proto(self.backend.info(), "test")


def echo_binding(backend: EchoBackend | None = None) -> ServiceBinding:
    return ServiceBinding(
        full_name="tryon.v1.Blend", servicer=EchoServicer(backend or EchoBackend()),
        add_to_server=blend_pb2_grpc.add_BlendServicer_to_server,
    )  # fmt: skip


def build_server(backend: EchoBackend, settings: StageSettings, max_concurrency: int = 2) -> StageServer:
    return StageServer(
        "echo", backend, [echo_binding(backend)], settings, port=0, max_concurrency=max_concurrency,
        metrics_port=0,
    )  # fmt: skip


class FailingSetupBackend(EchoBackend):
    """A backend whose setup raises, as a missing CUDA device or a corrupt checkpoint would."""

    def setup(self) -> None:
        raise RuntimeError("weights are corrupt")


if __name__ == "__main__":
    # python -m tests.tryon.runtime.echo_stage DELAY_S GRACE_S [--fail-setup]
    settings = StageSettings(host="127.0.0.1", shutdown_grace_s=float(sys.argv[2]))
    configure_logging(settings)
    backend_class = FailingSetupBackend if "--fail-setup" in sys.argv else EchoBackend
    server = build_server(backend_class(delay_s=float(sys.argv[1])), settings)
    print(f"PORT {server.port}", flush=True)
    status = serve(server)
    print("STOPPED", flush=True)
    exit_process(status)
