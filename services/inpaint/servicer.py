"""gRPC servicer of the inpaint stage: decode, call the backend, encode."""

from __future__ import annotations

import grpc

from tryon import imaging, protocol
from tryon.runtime import ServiceBinding
from tryon.runtime.servicer import StageServicer
from tryon.stages import STAGE_TABLE
from tryon.types import InpaintInput, InpaintOutput, StageBackend, StageInputError
from tryon.v1 import inpaint_pb2, inpaint_pb2_grpc


class InpaintServicer(StageServicer[InpaintInput, InpaintOutput], inpaint_pb2_grpc.InpaintServicer):
    def Inpaint(
        self, request: inpaint_pb2.InpaintRequest, context: grpc.ServicerContext
    ) -> inpaint_pb2.InpaintResponse:
        options = protocol.options_from_proto(request.options)  # validates first: cheapest failure
        person = protocol.image_from_proto(request.person, field="person", max_side=imaging.WORKING_LONG_SIDE)
        wire = protocol.wire_of(request.person)  # answer in the caller's image format
        shape = person.shape[:2]
        clothing_mask = protocol.mask_from_proto(
            request.clothing_mask, field="clothing_mask", shape=shape, max_side=imaging.WORKING_LONG_SIDE
        )
        if not clothing_mask.any():
            raise StageInputError("clothing_mask: empty mask, nothing to inpaint", field="clothing_mask")
        pose_image = protocol.image_from_proto(
            request.pose_image, field="pose_image", max_side=imaging.WORKING_LONG_SIDE
        )
        protocol.require_size(pose_image, shape, field="pose_image")
        result = self.backend.run(
            InpaintInput(
                person=person,
                clothing_mask=clothing_mask,
                warped_garment=protocol.rgba_from_proto(
                    request.warped_garment,
                    field="warped_garment",
                    shape=shape,
                    max_side=imaging.WORKING_LONG_SIDE,
                ),
                pose_image=pose_image,
                category=protocol.category_from_proto(request.category),
                options=options,
            )
        )
        return inpaint_pb2.InpaintResponse(image=protocol.image_to_proto(result.image, wire))


def binding(backend: StageBackend[InpaintInput, InpaintOutput]) -> ServiceBinding:
    return ServiceBinding(
        full_name=STAGE_TABLE["inpaint"].service,
        servicer=InpaintServicer(backend),
        add_to_server=inpaint_pb2_grpc.add_InpaintServicer_to_server,
    )
