"""gRPC servicer of the warp stage: decode, call the backend, encode."""

from __future__ import annotations

import grpc

from tryon import protocol
from tryon.runtime import ServiceBinding
from tryon.runtime.servicer import StageServicer
from tryon.stages import STAGE_TABLE
from tryon.types import StageBackend, StageInputError, WarpInput, WarpOutput
from tryon.v1 import warp_pb2, warp_pb2_grpc

#: The warp writes a target_width x target_height RGBA image; bound it like the decoder bounds inputs.
MAX_TARGET_SIDE = 4096


class WarpServicer(StageServicer[WarpInput, WarpOutput], warp_pb2_grpc.WarpServicer):
    def WarpGarment(
        self, request: warp_pb2.WarpGarmentRequest, context: grpc.ServicerContext
    ) -> warp_pb2.WarpGarmentResponse:
        for field in ("target_width", "target_height"):
            if not 16 <= getattr(request, field) <= MAX_TARGET_SIDE:
                raise StageInputError(
                    f"{field}: must be in [16, {MAX_TARGET_SIDE}], got {getattr(request, field)}", field=field
                )
        shape = (request.target_height, request.target_width)
        # An RGB garment stays RGB: adding an opaque alpha only costs a copy (the backend ignores it).
        opaque = protocol.is_raw_rgb(request.garment)
        garment = protocol.image_from_proto(
            request.garment, field="garment", mode="RGB" if opaque else "RGBA"
        )
        wire = protocol.wire_of(request.garment)  # answer in the caller's image format
        result = self.backend.run(
            WarpInput(
                garment=garment,
                keypoints=protocol.keypoints_from_proto(request.pose),
                target_size=shape,
                category=protocol.category_from_proto(request.category),
            )
        )
        reply = warp_pb2.WarpGarmentResponse(
            landmarks=[
                warp_pb2.GarmentLandmark(name=name, x=x, y=y)
                for name, (x, y) in result.garment_landmarks.items()
            ],
        )
        if request.wire_version >= 2:  # the garment's bounding box; the rest of the frame is (0, 0, 0, 0)
            reply.warped_garment_patch.CopyFrom(protocol.patch_to_proto(result.warped_garment, None, wire))
        else:
            reply.warped_garment.CopyFrom(protocol.image_to_proto(result.warped_garment, wire))
        return reply


def binding(backend: StageBackend[WarpInput, WarpOutput]) -> ServiceBinding:
    return ServiceBinding(
        full_name=STAGE_TABLE["warp"].service,
        servicer=WarpServicer(backend),
        add_to_server=warp_pb2_grpc.add_WarpServicer_to_server,
    )
