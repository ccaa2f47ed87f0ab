"""gRPC servicer of the blend stage: decode, call the backend, encode."""

from __future__ import annotations

import grpc

from tryon import imaging, protocol
from tryon.runtime import ServiceBinding
from tryon.runtime.servicer import StageServicer
from tryon.stages import STAGE_TABLE
from tryon.types import BlendInput, BlendOutput, StageBackend, StageInputError
from tryon.v1 import blend_pb2, blend_pb2_grpc, common_pb2


class BlendServicer(StageServicer[BlendInput, BlendOutput], blend_pb2_grpc.BlendServicer):
    def Blend(
        self, request: blend_pb2.BlendRequest, context: grpc.ServicerContext
    ) -> blend_pb2.BlendResponse:
        if request.HasField("generated_patch"):
            _require_working_size(request.person)
        person = protocol.image_from_proto(request.person, field="person", max_side=imaging.WORKING_LONG_SIDE)
        wire = protocol.wire_of(request.person)  # answer in the caller's image format
        shape = (person.shape[0], person.shape[1])
        if request.HasField("generated_patch"):
            generated = protocol.patch_from_proto(
                request.generated_patch, field="generated_patch", base=person
            )
        else:
            generated = protocol.image_from_proto(
                request.generated, field="generated", max_side=imaging.WORKING_LONG_SIDE
            )
            protocol.require_size(generated, shape, field="generated")
        clothing_mask = protocol.mask_from_proto(
            request.clothing_mask, field="clothing_mask", shape=shape, max_side=imaging.WORKING_LONG_SIDE
        )
        if not clothing_mask.any():
            raise StageInputError("clothing_mask: empty mask, nothing to blend", field="clothing_mask")
        # An empty face mask is valid (a photo cropped below the chin): nothing to restore.
        face_mask = protocol.mask_from_proto(
            request.face_mask, field="face_mask", shape=shape, max_side=imaging.WORKING_LONG_SIDE
        )
        result = self.backend.run(
            BlendInput(person=person, generated=generated, clothing_mask=clothing_mask, face_mask=face_mask)
        )
        if request.wire_version >= 2:
            return protocol.build(
                blend_pb2.BlendResponse, image_patch=protocol.patch_to_proto(result.image, person, wire)
            )
        return protocol.build(blend_pb2.BlendResponse, image=protocol.image_to_proto(result.image, wire))


def _require_working_size(person: common_pb2.Image) -> None:
    """Patches are placed in the person's frame: they cannot follow a person scaled to the working size."""
    if protocol.long_side(person) > imaging.WORKING_LONG_SIDE:
        raise StageInputError(
            f"person: with patches (wire version 2) the person image must be at most "
            f"{imaging.WORKING_LONG_SIDE} px on its long side",
            field="person",
        )


def binding(backend: StageBackend[BlendInput, BlendOutput]) -> ServiceBinding:
    return ServiceBinding(
        full_name=STAGE_TABLE["blend"].service,
        servicer=BlendServicer(backend),
        add_to_server=blend_pb2_grpc.add_BlendServicer_to_server,
    )
