"""gRPC servicer of the segmentation stage: decode, call the backend, encode."""

from __future__ import annotations

import grpc

from tryon import imaging, protocol
from tryon.runtime import ServiceBinding
from tryon.runtime.servicer import StageServicer
from tryon.stages import STAGE_TABLE
from tryon.types import SegmentationInput, SegmentationOutput, StageBackend
from tryon.v1 import segmentation_pb2, segmentation_pb2_grpc


class SegmentationServicer(
    StageServicer[SegmentationInput, SegmentationOutput], segmentation_pb2_grpc.SegmentationServicer
):
    def Segment(
        self, request: segmentation_pb2.SegmentRequest, context: grpc.ServicerContext
    ) -> segmentation_pb2.SegmentResponse:
        person = protocol.image_from_proto(request.person, field="person", max_side=imaging.WORKING_LONG_SIDE)
        wire = protocol.wire_of(request.person)  # answer in the caller's image format
        result = self.backend.run(
            SegmentationInput(person=person, category=protocol.category_from_proto(request.category))
        )
        version = request.wire_version
        return protocol.build(
            segmentation_pb2.SegmentResponse,
            label_map=protocol.label_map_to_proto(result.label_map, wire, version),
            clothing_mask=protocol.mask_to_proto(result.clothing_mask, wire, version),
            face_mask=protocol.mask_to_proto(result.face_mask, wire, version),
            person_mask=protocol.mask_to_proto(result.person_mask, wire, version),
        )


def binding(backend: StageBackend[SegmentationInput, SegmentationOutput]) -> ServiceBinding:
    return ServiceBinding(
        full_name=STAGE_TABLE["segmentation"].service,
        servicer=SegmentationServicer(backend),
        add_to_server=segmentation_pb2_grpc.add_SegmentationServicer_to_server,
    )
