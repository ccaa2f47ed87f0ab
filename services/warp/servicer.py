"""gRPC servicer of the warp stage: decode, call the backend, encode."""

from __future__ import annotations

import grpc

from tryon import imaging, protocol
from tryon.runtime import ServiceBinding
from tryon.runtime.servicer import StageServicer
from tryon.stages import STAGE_TABLE
from tryon.types import StageBackend, StageInputError, WarpInput, WarpOutput
from tryon.v1 import warp_pb2, warp_pb2_grpc

#: The warp writes a target_width x target_height RGBA image; bound it like the decoder bounds inputs.
MAX_TARGET_SIDE = 4096
#: Landmarks and framing of a WarpGarment reply besides its pixels.
REPLY_OVERHEAD_BYTES = 64 * 1024


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
        # The reply is a target-sized RGBA image: one that cannot be sent must not be computed (a retry of
        # it could never succeed either). Raw pixels are the reply's worst case.
        reply_bytes = request.target_width * request.target_height * 4 + REPLY_OVERHEAD_BYTES
        if self.max_message_bytes is not None and reply_bytes > self.max_message_bytes:
            raise StageInputError(
                f"target_width: a {request.target_width}x{request.target_height} RGBA result "
                f"({reply_bytes / 2**20:.0f} MiB) exceeds the {self.max_message_bytes / 2**20:.0f} MiB "
                "message limit (TRYON_MAX_MESSAGE_MB)",
                field="target_width",
            )
        # An RGB garment stays RGB: adding an opaque alpha only costs a copy (the backend ignores it).
        garment = protocol.image_as_sent_from_proto(
            request.garment, field="garment", max_side=imaging.GARMENT_LONG_SIDE
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
