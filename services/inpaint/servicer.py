"""gRPC servicer of the inpaint stage: decode, call the backend, encode.

``InpaintStream`` runs the backend in a worker thread that carries the call's context (so the
interceptor's cancellation check reaches it) plus a progress reporter that queues each report; the
handler thread turns the queue into stream messages as they come.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np

from tryon import imaging, progress, protocol
from tryon.runtime import ServiceBinding
from tryon.runtime.servicer import StageServicer
from tryon.stages import STAGE_TABLE
from tryon.types import InpaintInput, InpaintOutput, RGBImage, StageBackend, StageInputError
from tryon.v1 import inpaint_pb2, inpaint_pb2_grpc
from tryon.vision.openpose import draw_openpose


class InpaintServicer(StageServicer[InpaintInput, InpaintOutput], inpaint_pb2_grpc.InpaintServicer):
    def Inpaint(
        self, request: inpaint_pb2.InpaintRequest, context: grpc.ServicerContext
    ) -> inpaint_pb2.InpaintResponse:
        inputs, wire = self._decode(request)
        return self._encode(self.backend.run(inputs), inputs.person, wire, request.wire_version)

    def InpaintStream(
        self, request: inpaint_pb2.InpaintRequest, context: grpc.ServicerContext
    ) -> Iterator[inpaint_pb2.InpaintStreamResponse]:
        inputs, wire = self._decode(request)  # bad input fails before a thread is started
        events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

        def work() -> None:
            try:
                with progress.reporting(lambda done, total: events.put(("progress", (done, total)))):
                    events.put(("result", self.backend.run(inputs)))
            except BaseException as error:  # handed to the handler thread, which raises it there
                events.put(("error", error))

        call_context = contextvars.copy_context()  # holds the interceptor's cancellation check
        worker = threading.Thread(target=call_context.run, args=(work,), name="inpaint-stream", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = events.get()
                if kind == "progress":
                    done, total = value
                    yield inpaint_pb2.InpaintStreamResponse(
                        progress=inpaint_pb2.InpaintProgress(done=done, total=total)
                    )
                elif kind == "result":
                    result = self._encode(value, inputs.person, wire, request.wire_version)
                    yield protocol.build(inpaint_pb2.InpaintStreamResponse, result=result)
                    return
                else:
                    raise value
        finally:
            # Also when the stream is abandoned (the caller went away): the backend sees the cancellation
            # at its next step; waiting keeps the call's concurrency slot until the GPU is really free.
            worker.join()

    @staticmethod
    def _decode(request: inpaint_pb2.InpaintRequest) -> tuple[InpaintInput, protocol.WireFormat]:
        options = protocol.options_from_proto(request.options)  # validates first: cheapest failure
        if (request.HasField("pose") or request.HasField("warped_garment_patch")) and protocol.long_side(
            request.person
        ) > imaging.WORKING_LONG_SIDE:
            # keypoints and patches are placed in the person's frame: they cannot follow a scaled person
            raise StageInputError(
                f"person: with keypoints or patches (wire version 2) the person image must be at most "
                f"{imaging.WORKING_LONG_SIDE} px on its long side",
                field="person",
            )
        person = protocol.image_from_proto(request.person, field="person", max_side=imaging.WORKING_LONG_SIDE)
        wire = protocol.wire_of(request.person)  # answer in the caller's image format
        shape = (person.shape[0], person.shape[1])
        clothing_mask = protocol.mask_from_proto(
            request.clothing_mask, field="clothing_mask", shape=shape, max_side=imaging.WORKING_LONG_SIDE
        )
        if not clothing_mask.any():
            raise StageInputError("clothing_mask: empty mask, nothing to inpaint", field="clothing_mask")
        keypoints = None
        if request.HasField("pose"):  # the pose stage's image is exactly these keypoints drawn
            keypoints = protocol.keypoints_from_proto(request.pose)
            pose_image = draw_openpose(keypoints, *shape)
        else:
            pose_image = protocol.image_from_proto(
                request.pose_image, field="pose_image", max_side=imaging.WORKING_LONG_SIDE
            )
            protocol.require_size(pose_image, shape, field="pose_image")
        if request.HasField("warped_garment_patch"):
            transparent = np.zeros((*shape, 4), np.uint8)
            warped_garment = protocol.patch_from_proto(
                request.warped_garment_patch, field="warped_garment_patch", base=transparent, mode="RGBA"
            )
        else:
            warped_garment = protocol.rgba_from_proto(
                request.warped_garment,
                field="warped_garment",
                shape=shape,
                max_side=imaging.WORKING_LONG_SIDE,
            )
        inputs = InpaintInput(
            person=person,
            clothing_mask=clothing_mask,
            warped_garment=warped_garment,
            pose_image=pose_image,
            keypoints=keypoints,
            category=protocol.category_from_proto(request.category),
            options=options,
        )
        return inputs, wire

    @staticmethod
    def _encode(
        result: InpaintOutput, person: RGBImage, wire: protocol.WireFormat, version: int
    ) -> inpaint_pb2.InpaintResponse:
        if version >= 2:  # only what differs from the caller's person photo
            return protocol.build(
                inpaint_pb2.InpaintResponse, image_patch=protocol.patch_to_proto(result.image, person, wire)
            )
        return protocol.build(inpaint_pb2.InpaintResponse, image=protocol.image_to_proto(result.image, wire))


def binding(backend: StageBackend[InpaintInput, InpaintOutput]) -> ServiceBinding:
    return ServiceBinding(
        full_name=STAGE_TABLE["inpaint"].service,
        servicer=InpaintServicer(backend),
        add_to_server=inpaint_pb2_grpc.add_InpaintServicer_to_server,
    )
