"""gRPC servicer of the pose stage: decode, call the backend, encode."""

from __future__ import annotations

import grpc

from tryon import imaging, protocol
from tryon.runtime import ServiceBinding
from tryon.runtime.servicer import StageServicer
from tryon.stages import STAGE_TABLE
from tryon.types import PoseInput, PoseOutput, StageBackend
from tryon.v1 import pose_pb2, pose_pb2_grpc


class PoseServicer(StageServicer[PoseInput, PoseOutput], pose_pb2_grpc.PoseServicer):
    def Estimate(
        self, request: pose_pb2.EstimatePoseRequest, context: grpc.ServicerContext
    ) -> pose_pb2.EstimatePoseResponse:
        person = protocol.image_from_proto(request.person, field="person", max_side=imaging.WORKING_LONG_SIDE)
        wire = protocol.wire_of(request.person)  # answer in the caller's image format
        result = self.backend.run(PoseInput(person=person))
        reply = pose_pb2.EstimatePoseResponse(pose=protocol.keypoints_to_proto(result.keypoints))
        if request.wire_version < 2:  # version 2 callers draw the image from the keypoints themselves
            reply.pose_image.CopyFrom(protocol.image_to_proto(result.pose_image, wire))
        return reply


def binding(backend: StageBackend[PoseInput, PoseOutput]) -> ServiceBinding:
    return ServiceBinding(
        full_name=STAGE_TABLE["pose"].service,
        servicer=PoseServicer(backend),
        add_to_server=pose_pb2_grpc.add_PoseServicer_to_server,
    )
