"""What every stage servicer shares: it holds its backend, knows the message limit and answers GetInfo."""

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
        #: The server's message size limit, set by :class:`~tryon.runtime.StageServer`; servicers whose
        #: reply size follows the request (warp) refuse up front what could not be sent back.
        self.max_message_bytes: int | None = None

    def GetInfo(
        self, request: common_pb2.GetInfoRequest, context: grpc.ServicerContext
    ) -> common_pb2.ServiceInfo:
        return protocol.info_to_proto(self.backend.info(), __version__)
