"""Typed gRPC clients of the five stage services, used by the orchestrator (and by anyone else).

Each client speaks the typed objects of :mod:`tryon.types` and is itself a :class:`StageBackend`
(``setup`` waits until the service is SERVING, ``run`` calls it, ``info`` asks it), so the in-process
:class:`~tryon.pipeline.TryOnPipeline` runs unchanged over gRPC with ``remote_backends(settings)``.

Channels: one per service, kept open; keepalive pings so idle connections through load balancers survive;
reconnection attempts at most a second apart, so a restarted service is used again at once; UNAVAILABLE
retried with backoff by gRPC itself (service config), never INVALID_ARGUMENT; RESOURCE_EXHAUSTED refusals
("at capacity") retried by the client with exponential backoff and jitter, honouring the server's
``retry-after-ms`` hint, within the call's deadline; a deadline on every call. Status codes come back as the
same exceptions the stages raise in process.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tryon import imaging, progress, protocol
from tryon.observability import grpc as observability_grpc
from tryon.protocol import RETRY_AFTER_KEY
from tryon.stages import STAGE_TABLE, STAGES
from tryon.stages import stage as stage_of
from tryon.types import (
    BackendInfo,
    BlendInput,
    BlendOutput,
    InpaintInput,
    InpaintOutput,
    ModelInfo,
    ModelUnavailableError,
    PoseInput,
    PoseOutput,
    SegmentationInput,
    SegmentationOutput,
    StageInputError,
    StageOverloadedError,
    WarpInput,
    WarpOutput,
)
from tryon.v1 import (
    blend_pb2,
    blend_pb2_grpc,
    common_pb2,
    inpaint_pb2,
    inpaint_pb2_grpc,
    pose_pb2,
    pose_pb2_grpc,
    segmentation_pb2,
    segmentation_pb2_grpc,
    warp_pb2,
    warp_pb2_grpc,
)
from tryon.vision.images import shrunk_size
from tryon.vision.openpose import draw_openpose

In = TypeVar("In")
Out = TypeVar("Out")


def _address(stage: str) -> str:
    return STAGE_TABLE[stage].default_address


def _timeout(stage: str) -> float:
    return STAGE_TABLE[stage].timeout_s


class ClientSettings(BaseSettings):
    """Where the stage services are and how long calls may take (``TRYON_*`` environment).

    Defaults come from the stage registry (tryon/stages.py): ``localhost:<default port>`` and each stage's
    own deadline (GPU model stages get longer ones than the CPU stages).
    """

    model_config = SettingsConfigDict(env_prefix="TRYON_", extra="ignore")

    segmentation_addr: str = _address("segmentation")
    pose_addr: str = _address("pose")
    warp_addr: str = _address("warp")
    inpaint_addr: str = _address("inpaint")
    blend_addr: str = _address("blend")
    #: Per-call deadlines, seconds.
    segmentation_timeout_s: float = Field(default=_timeout("segmentation"), gt=0)
    pose_timeout_s: float = Field(default=_timeout("pose"), gt=0)
    warp_timeout_s: float = Field(default=_timeout("warp"), gt=0)
    inpaint_timeout_s: float = Field(default=_timeout("inpaint"), gt=0)
    blend_timeout_s: float = Field(default=_timeout("blend"), gt=0)
    max_message_mb: int = Field(default=64, ge=1, le=2047)
    retry_attempts: int = Field(default=4, ge=1, le=5)  # gRPC caps maxAttempts at 5
    ready_timeout_s: float = Field(default=120.0, gt=0)
    #: "raw" sends uncompressed pixels (fast, larger: for our own network); "png" for constrained links.
    wire_format: protocol.WireFormat = "raw"
    #: 2: the compact request and response forms (keypoints, bitmasks, patches); 1: full-frame images only,
    #: as tryon before the lean wire sent them (for servers that predate it, and to measure the difference).
    wire_version: int = Field(default=protocol.WIRE_VERSION, ge=1, le=protocol.WIRE_VERSION)

    def address(self, stage: str) -> str:
        return str(getattr(self, f"{stage_of(stage).name}_addr"))

    def timeout_s(self, stage: str) -> float:
        return float(getattr(self, f"{stage_of(stage).name}_timeout_s"))


class RemoteStageError(RuntimeError):
    """A stage call failed for a reason other than bad input or overload (UNAVAILABLE after retries,
    DEADLINE_EXCEEDED, INTERNAL, ...). ``code`` is the gRPC status."""

    def __init__(self, stage: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{stage}: {code.name}: {details}")
        self.stage = stage
        self.code = code


#: Client keepalive ping interval; must not be shorter than the servers' minimum ping interval.
KEEPALIVE_TIME_MS = 30_000
#: Reconnection backoff. gRPC's defaults (1 s, growing 1.6x to 120 s) left a client failing calls for
#: up to 16 s against a service that had restarted; a stage is on our own network, so try often.
RECONNECT_BACKOFF_MIN_MS = 100
RECONNECT_BACKOFF_MAX_MS = 1_000
#: Backoff of RESOURCE_EXHAUSTED retries: doubles from the first value up to the second (seconds), each
#: wait drawn from [half, all] of it ("equal jitter"), at least the server's retry-after hint.
OVERLOAD_BACKOFF_S = (0.05, 2.0)
#: A refused call is retried only when at least this much of its deadline would be left after the wait: a
#: retry with less ends in DEADLINE_EXCEEDED on a busy machine, hiding that the stage was at capacity.
RETRY_MIN_BUDGET_S = 0.1

#: "field: message", as the stage servers write INVALID_ARGUMENT details (runtime.describe_input_error).
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): ")


def _service_config(service: str, attempts: int) -> str:
    method_config: dict[str, Any] = {"name": [{"service": service}]}
    if attempts > 1:  # gRPC rejects the whole service config for maxAttempts < 2
        method_config["retryPolicy"] = {
            "maxAttempts": attempts,
            "initialBackoff": "0.2s",
            "maxBackoff": "5s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps(
        {
            # Every address the target resolves to (a headless Service: each ready pod) gets calls in turn;
            # pick_first, gRPC's default, would send all of them to one pod. docs/DEPLOY.md, "Load balancing".
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [method_config],
        }
    )


def channel_options(service: str, settings: ClientSettings) -> list[tuple[str, Any]]:
    limit = settings.max_message_mb * 1024 * 1024
    return [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _service_config(service, settings.retry_attempts)),
        # gRPC replays a request only while it fits its retry buffer (256 KiB by default): a stage request
        # carries images of several MB, so without this no call would ever be retried.
        ("grpc.per_rpc_retry_buffer_size", limit),
        # Pings keep idle connections through load balancers and NATs alive and detect dead peers during
        # minutes-long inpaint calls. The stage servers accept pings this frequent (tryon/runtime/server.py);
        # a server that does not answers GOAWAY "too_many_pings".
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MIN_MS),
        ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MIN_MS),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
    ]


def open_channel(address: str, service: str, settings: ClientSettings) -> grpc.Channel:
    channel = grpc.insecure_channel(address, options=channel_options(service, settings))
    # Every call carries the current job id and trace context (tryon/observability/grpc.py).
    return observability_grpc.intercept_channel(channel)


class StageClient(Generic[In, Out]):
    """Base of the five clients: channel, deadline, error mapping, readiness and info.

    A client is the remote adapter of its stage: it has the :class:`~tryon.types.StageBackend` methods
    (``setup`` waits for SERVING, ``run``, ``info``), so it stands wherever a backend does.
    """

    stage: str
    service: str
    stub_class: Any

    def __init__(
        self, address: str, settings: ClientSettings | None = None, timeout_s: float | None = None
    ) -> None:
        self.settings = settings or ClientSettings()
        self.address = address
        self.timeout_s = timeout_s or self.settings.timeout_s(self.stage)
        self.channel = open_channel(address, self.service, self.settings)
        self.stub = self.stub_class(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> StageClient[In, Out]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def setup(self) -> None:
        """Wait until the service reports SERVING (its backend is loaded and warm)."""
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + self.settings.ready_timeout_s
        while True:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(service=self.service), timeout=5).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RemoteStageError(
                    self.stage, grpc.StatusCode.UNAVAILABLE, f"{self.address} is not SERVING"
                )
            time.sleep(0.2)

    def info(self) -> BackendInfo:
        reply: common_pb2.ServiceInfo = self._call("GetInfo", common_pb2.GetInfoRequest(), timeout_s=10)
        return BackendInfo(
            stage=reply.stage,
            backend=reply.backend,
            device=reply.device,
            models=tuple(ModelInfo(name=m.name, source=m.source) for m in reply.models),
        )

    def run(self, inputs: In, /, *, timeout_s: float | None = None) -> Out:
        raise NotImplementedError

    def _image(self, image: Any) -> common_pb2.Image:
        return protocol.image_to_proto(image, self.settings.wire_format)

    def _mask(self, mask: Any) -> common_pb2.Image:
        return protocol.mask_to_proto(mask, self.settings.wire_format, self.settings.wire_version)

    def _patch(self, image: Any, base: Any) -> common_pb2.ImagePatch:
        return protocol.patch_to_proto(image, base, self.settings.wire_format)

    @property
    def _lean(self) -> bool:
        return self.settings.wire_version >= 2

    def _call(self, method: str, request: Any, *, timeout_s: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        backoff = OVERLOAD_BACKOFF_S[0]
        while True:
            try:
                return getattr(self.stub, method)(request, timeout=max(0.001, deadline - time.monotonic()))
            except grpc.RpcError as error:
                wait = _retry_wait(error, backoff, deadline)
                if wait is None:
                    raise self._error(error) from error
                time.sleep(wait)
                backoff = min(backoff * 2, OVERLOAD_BACKOFF_S[1])

    def _stream(self, method: str, request: Any, *, timeout_s: float | None = None) -> Iterator[Any]:
        """The messages of a server-streaming call, as they arrive; errors mapped as in :meth:`_call`, and
        "at capacity" refusals (which come before any message) retried as there."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        backoff = OVERLOAD_BACKOFF_S[0]
        while True:
            call = getattr(self.stub, method)(request, timeout=max(0.001, deadline - time.monotonic()))
            received = False
            try:
                for message in call:
                    received = True
                    yield message
                return
            except grpc.RpcError as error:
                wait = None if received else _retry_wait(error, backoff, deadline)
                if wait is None:
                    raise self._error(error) from error
            finally:
                call.cancel()  # a no-op once the stream has ended; frees the server if we stopped reading
            time.sleep(wait)
            backoff = min(backoff * 2, OVERLOAD_BACKOFF_S[1])

    def _error(self, error: grpc.RpcError) -> Exception:
        """The exception a stage raises in process for the status a call ended with."""
        code, details = error.code(), error.details() or ""
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            field = _FIELD_PREFIX.match(details)
            return StageInputError(details, field=field.group(1) if field else None)
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return StageOverloadedError(f"{self.stage}: {details}")
        if code is grpc.StatusCode.FAILED_PRECONDITION:
            return ModelUnavailableError(details)
        return RemoteStageError(self.stage, code, details)


def _retry_wait(error: grpc.RpcError, backoff: float, deadline: float) -> float | None:
    """Seconds to wait before retrying ``error`` (see :func:`_overload_wait`), or None when it is not to be
    retried: not a refusal, or too little of the call's ``deadline`` (monotonic) would be left after the
    wait (:data:`RETRY_MIN_BUDGET_S`)."""
    wait = _overload_wait(error, backoff)
    if wait is None or time.monotonic() + wait + RETRY_MIN_BUDGET_S >= deadline:
        return None
    return wait


def _overload_wait(error: grpc.RpcError, backoff: float) -> float | None:
    """Seconds to wait before retrying ``error``, or None when it is not a stage's "at capacity" refusal.

    Only refusals carrying the server's retry hint are retried: gRPC's own RESOURCE_EXHAUSTED (a message
    over the size limit) would fail again.
    """
    if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    hint = dict(error.trailing_metadata() or ()).get(RETRY_AFTER_KEY)
    if hint is None:
        return None
    try:
        hinted = float(hint) / 1000
    except (TypeError, ValueError):
        hinted = 0.0
    base = max(backoff, min(hinted, OVERLOAD_BACKOFF_S[1]))
    return random.uniform(base / 2, base)


class SegmentationClient(StageClient[SegmentationInput, SegmentationOutput]):
    stage, service, stub_class = (
        "segmentation",
        STAGE_TABLE["segmentation"].service,
        segmentation_pb2_grpc.SegmentationStub,
    )

    def run(self, inputs: SegmentationInput, /, *, timeout_s: float | None = None) -> SegmentationOutput:
        reply = self._call(
            "Segment",
            protocol.build(
                segmentation_pb2.SegmentRequest,
                person=self._image(inputs.person),
                category=protocol.category_to_proto(inputs.category),
                wire_version=self.settings.wire_version,
            ),
            timeout_s=timeout_s,
        )
        # The service works at (and answers in) the working resolution: a larger photo comes back smaller.
        shape = shrunk_size(inputs.person.shape[0], inputs.person.shape[1], imaging.WORKING_LONG_SIDE)
        return SegmentationOutput(
            label_map=protocol.image_from_proto(reply.label_map, field="label_map", mode="L"),
            clothing_mask=protocol.mask_from_proto(reply.clothing_mask, field="clothing_mask", shape=shape),
            face_mask=protocol.mask_from_proto(reply.face_mask, field="face_mask", shape=shape),
            person_mask=protocol.mask_from_proto(reply.person_mask, field="person_mask", shape=shape),
        )


class PoseClient(StageClient[PoseInput, PoseOutput]):
    stage, service, stub_class = "pose", STAGE_TABLE["pose"].service, pose_pb2_grpc.PoseStub

    def run(self, inputs: PoseInput, /, *, timeout_s: float | None = None) -> PoseOutput:
        reply = self._call(
            "Estimate",
            protocol.build(
                pose_pb2.EstimatePoseRequest,
                person=self._image(inputs.person),
                wire_version=self.settings.wire_version,
            ),
            timeout_s=timeout_s,
        )
        keypoints = protocol.keypoints_from_proto(reply.pose)
        if reply.pose_image.data:  # a version-1 server
            pose_image = protocol.image_from_proto(reply.pose_image, field="pose_image")
        else:  # what the server would have sent: its backends draw exactly this
            pose_image = draw_openpose(keypoints, *inputs.person.shape[:2])
        return PoseOutput(keypoints=keypoints, pose_image=pose_image)


class WarpClient(StageClient[WarpInput, WarpOutput]):
    stage, service, stub_class = "warp", STAGE_TABLE["warp"].service, warp_pb2_grpc.WarpStub

    def run(self, inputs: WarpInput, /, *, timeout_s: float | None = None) -> WarpOutput:
        height, width = inputs.target_size
        request = protocol.build(
            warp_pb2.WarpGarmentRequest,
            garment=self._image(inputs.garment),
            pose=protocol.keypoints_to_proto(inputs.keypoints),
            target_width=width,
            target_height=height,
            category=protocol.category_to_proto(inputs.category),
            wire_version=self.settings.wire_version,
        )
        reply = self._call("WarpGarment", request, timeout_s=timeout_s)
        if reply.HasField("warped_garment_patch"):
            transparent = np.zeros((height, width, 4), np.uint8)
            warped_garment = protocol.patch_from_proto(
                reply.warped_garment_patch, field="warped_garment_patch", base=transparent, mode="RGBA"
            )
        else:
            warped_garment = protocol.rgba_from_proto(
                reply.warped_garment, field="warped_garment", shape=(height, width)
            )
        return WarpOutput(
            warped_garment=warped_garment,
            garment_landmarks={landmark.name: (landmark.x, landmark.y) for landmark in reply.landmarks},
        )


class InpaintClient(StageClient[InpaintInput, InpaintOutput]):
    stage, service, stub_class = "inpaint", STAGE_TABLE["inpaint"].service, inpaint_pb2_grpc.InpaintStub

    def run(self, inputs: InpaintInput, /, *, timeout_s: float | None = None) -> InpaintOutput:
        request = protocol.build(
            inpaint_pb2.InpaintRequest,
            person=self._image(inputs.person),
            clothing_mask=self._mask(inputs.clothing_mask),
            category=protocol.category_to_proto(inputs.category),
            options=protocol.options_to_proto(inputs.options),
            wire_version=self.settings.wire_version,
        )
        if self._lean:
            request.warped_garment_patch.CopyFrom(self._patch(inputs.warped_garment, None))
        else:
            request.warped_garment.CopyFrom(self._image(inputs.warped_garment))
        if self._lean and inputs.keypoints is not None:  # the server draws pose_image from them, as pose did
            request.pose.CopyFrom(protocol.keypoints_to_proto(inputs.keypoints))
        else:
            request.pose_image.CopyFrom(self._image(inputs.pose_image))
        if not progress.is_reporting():
            reply = self._call("Inpaint", request, timeout_s=timeout_s)
            return InpaintOutput(image=_generated_image(reply, inputs.person))
        # Someone listens for progress: stream it, forwarding each step into the caller's reporter.
        result: inpaint_pb2.InpaintResponse | None = None
        for message in self._stream("InpaintStream", request, timeout_s=timeout_s):  # read to the status
            if message.HasField("progress"):
                progress.report_progress(message.progress.done, message.progress.total)
            elif message.HasField("result"):
                result = message.result
        if result is None:
            raise RemoteStageError(self.stage, grpc.StatusCode.INTERNAL, "the stream ended without a result")
        return InpaintOutput(image=_generated_image(result, inputs.person))


class BlendClient(StageClient[BlendInput, BlendOutput]):
    stage, service, stub_class = "blend", STAGE_TABLE["blend"].service, blend_pb2_grpc.BlendStub

    def run(self, inputs: BlendInput, /, *, timeout_s: float | None = None) -> BlendOutput:
        request = protocol.build(
            blend_pb2.BlendRequest,
            person=self._image(inputs.person),
            clothing_mask=self._mask(inputs.clothing_mask),
            face_mask=self._mask(inputs.face_mask),
            wire_version=self.settings.wire_version,
        )
        if self._lean:
            request.generated_patch.CopyFrom(self._patch(inputs.generated, inputs.person))
        else:
            request.generated.CopyFrom(self._image(inputs.generated))
        reply = self._call("Blend", request, timeout_s=timeout_s)
        return BlendOutput(image=_generated_image(reply, inputs.person))


def _generated_image(reply: Any, person: Any) -> Any:
    """The image of an Inpaint or Blend reply: a patch over the request's person, or (version 1) whole."""
    if reply.HasField("image_patch"):
        image = protocol.patch_from_proto(reply.image_patch, field="image_patch", base=person)
    else:
        image = protocol.image_from_proto(reply.image, field="image")
    return image


def remote_backends(settings: ClientSettings | None = None) -> dict[str, StageClient[Any, Any]]:
    """One client per stage, addressed from settings: a drop-in ``backends`` mapping for TryOnPipeline."""
    settings = settings or ClientSettings()
    return {stage: CLIENTS[stage](settings.address(stage), settings) for stage in STAGES}


#: The client class of each stage.
CLIENTS: dict[str, type[StageClient[Any, Any]]] = {
    client.stage: client
    for client in (SegmentationClient, PoseClient, WarpClient, InpaintClient, BlendClient)
}
