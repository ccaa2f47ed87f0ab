"""What every stage servicer shares: it holds its backend and answers GetInfo from it."""

from __future__ import annotations

from typing import Generic, TypeVar

import grpc

from tryon import __version__, protocol
from tryon.types import StageBackend
from tryon.v1 import common_pb2

In = TypeVar("In")
Out = TypeVar("Out")


class StageServicer(Generic[In, Out]):
    """Base of the five servicers; list it before the generated ``*Servicer`` so its GetInfo wins."""

    def __init__(self, backend: StageBackend[In, Out]) -> None:
        self.backend = backend

    def GetInfo(
        self, request: common_pb2.GetInfoRequest, context: grpc.ServicerContext
    ) -> common_pb2.ServiceInfo:
        return protocol.info_to_proto(self.backend.info(), __version__)
