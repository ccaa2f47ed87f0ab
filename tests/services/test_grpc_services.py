"""The five stage services as real subprocesses (lite backends) on loopback, called over gRPC."""

from __future__ import annotations

import signal
import time
import urllib.request
import zlib
from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

import tryon
from tests.imagegen import draw_garment, person_photo, png_header_only
from tryon import imaging, progress, protocol
from tryon.backends import create_backend
from tryon.client import ClientSettings, StageClient, remote_backends
from tryon.local_services import RunningService, running_services, start_service
from tryon.pipeline import TryOnPipeline
from tryon.settings import StageSettings
from tryon.stages import STAGE_TABLE
from tryon.types import (
    STAGES,
    BackendKind,
    BlendInput,
    GarmentCategory,
    GenerationOptions,
    InpaintInput,
    PoseInput,
    SegmentationInput,
    StageBackend,
    StageInputError,
    WarpInput,
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

BITMASK, DEFLATE = protocol.BITMASK_MEDIA_TYPE, protocol.RAW_DEFLATE_MEDIA_TYPE
SERVICE_NAMES = {stage: f"tryon.v1.{stage.capitalize()}" for stage in STAGES}
PERSON_SIDE = 512  # big enough for the detectors, small enough to keep the suite fast


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, RunningService]]:
    with running_services(STAGES, TRYON_MAX_QUEUE="4") as running:
        yield running


@pytest.fixture(scope="module")
def clients(services: dict[str, RunningService]) -> Iterator[dict[str, StageClient]]:
    settings = ClientSettings(**{f"{stage}_addr": service.address for stage, service in services.items()})
    remote = remote_backends(settings)
    for client in remote.values():
        client.setup()  # waits for SERVING
    yield remote
    for client in remote.values():
        client.close()


@pytest.fixture(scope="module")
def local() -> dict[str, StageBackend]:
    settings = StageSettings(backend=BackendKind.LITE)
    backends = {stage: create_backend(stage, settings) for stage in STAGES}
    for backend in backends.values():
        backend.setup()
    return backends


@pytest.fixture(scope="module")
def person() -> np.ndarray:
    return person_photo(PERSON_SIDE)


@pytest.fixture(scope="module")
def stage_inputs(local: dict[str, StageBackend], person: np.ndarray) -> dict[str, object]:
    """One valid input per stage, made by running the in-process stages."""
    segmentation_input = SegmentationInput(person=person, category=GarmentCategory.UPPER_BODY)
    segmentation = local["segmentation"].run(segmentation_input)
    pose = local["pose"].run(PoseInput(person=person))
    warp_input = WarpInput(
        garment=draw_garment(size=(384, 512)), keypoints=pose.keypoints, target_size=person.shape[:2],
    )  # fmt: skip
    warp = local["warp"].run(warp_input)
    inpaint_input = InpaintInput(
        person=person, clothing_mask=segmentation.clothing_mask, warped_garment=warp.warped_garment,
        pose_image=pose.pose_image, options=GenerationOptions(seed=1),
    )  # fmt: skip
    inpaint = local["inpaint"].run(inpaint_input)
    blend_input = BlendInput(
        person=person, generated=inpaint.image, clothing_mask=segmentation.clothing_mask,
        face_mask=segmentation.face_mask,
    )  # fmt: skip
    return {
        "segmentation": segmentation_input,
        "pose": PoseInput(person=person),
        "warp": warp_input,
        "inpaint": inpaint_input,
        "blend": blend_input,
    }


def _channel(service: RunningService) -> grpc.Channel:
    return grpc.insecure_channel(service.address, options=[("grpc.max_receive_message_length", 64 << 20)])


def _assert_same_output(remote: object, local: object) -> None:
    for field, value in vars(local).items():
        other = getattr(remote, field)
        if isinstance(value, np.ndarray):
            assert other.shape == value.shape, field
            np.testing.assert_allclose(
                other, value, atol=1e-4 if value.dtype == np.float32 else 0, err_msg=field
            )
        elif isinstance(value, dict):  # landmarks travel as float32
            assert other.keys() == value.keys(), field
            for key, point in value.items():
                assert other[key] == pytest.approx(point, abs=1e-3), key
        else:
            assert other == value, field


@pytest.mark.parametrize("stage", STAGES)
def test_service_is_serving_reflected_and_reports_its_backend(
    stage: str,
    services: dict[str, RunningService],
    clients: dict[str, StageClient],
    local: dict[str, StageBackend],
) -> None:
    with _channel(services[stage]) as channel:
        listed = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert SERVICE_NAMES[stage] in listed
    with _channel(services[stage]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service_name in ("", SERVICE_NAMES[stage]):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service_name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        get_info = channel.unary_unary(
            f"/{SERVICE_NAMES[stage]}/GetInfo",
            request_serializer=common_pb2.GetInfoRequest.SerializeToString,
            response_deserializer=common_pb2.ServiceInfo.FromString,
        )
        assert get_info(common_pb2.GetInfoRequest(), timeout=5).version == tryon.__version__
    info = clients[stage].info()
    # warp and blend have one implementation, which lite and full deployments alike run
    kind = "lite" if STAGE_TABLE[stage].has_models else "single"
    assert (info.stage, info.backend, info.device) == (stage, kind, "cpu")
    assert info == local[stage].info()  # models included


@pytest.mark.parametrize("stage", STAGES)
def test_remote_call_matches_the_in_process_stage(
    stage: str,
    clients: dict[str, StageClient],
    local: dict[str, StageBackend],
    stage_inputs: dict[str, object],
) -> None:
    inputs = stage_inputs[stage]
    _assert_same_output(clients[stage].run(inputs), local[stage].run(inputs))


@pytest.mark.parametrize(("wire_format", "wire_version"), [("png", 2), ("png", 1), ("raw", 1)])
@pytest.mark.parametrize("stage", STAGES)
def test_other_wire_forms_give_the_same_results(
    stage: str,
    wire_format: str,
    wire_version: int,
    services: dict[str, RunningService],
    local: dict[str, StageBackend],
    stage_inputs: dict[str, object],
) -> None:
    """What grpcurl and other callers send (PNG; full-frame version-1 forms, as clients before the lean wire
    did) decodes to the very pixels our raw version-2 hops carry."""
    settings = ClientSettings(
        wire_format=wire_format,
        wire_version=wire_version,
        **{f"{name}_addr": service.address for name, service in services.items()},
    )
    png_clients = remote_backends(settings)
    try:
        inputs = stage_inputs[stage]
        _assert_same_output(png_clients[stage].run(inputs), local[stage].run(inputs))
    finally:
        for png_client in png_clients.values():
            png_client.close()


@pytest.mark.parametrize("portrait", [False, True])
def test_chain_through_five_services_equals_the_in_process_pipeline(
    clients: dict[str, StageClient], local: dict[str, StageBackend], person: np.ndarray, portrait: bool
) -> None:
    if portrait:  # height != width: keypoints, patches and bitmasks must keep x and y apart
        person = np.ascontiguousarray(person[:, 72:-56])
    garment = draw_garment(color=(40, 90, 200), size=(384, 512))
    over_grpc = TryOnPipeline(clients).run(person, garment, options=GenerationOptions(seed=4))
    in_process = TryOnPipeline(local).run(person, garment, options=GenerationOptions(seed=4))
    assert imaging.encode_png(over_grpc.image) == imaging.encode_png(in_process.image)


def test_inpaint_stream_reports_monotonic_progress_and_returns_the_unary_image(
    clients: dict[str, StageClient], stage_inputs: dict[str, object]
) -> None:
    inputs = stage_inputs["inpaint"]
    events: list[tuple[int, int]] = []
    with progress.reporting(lambda done, total: events.append((done, total))):
        streamed = clients["inpaint"].run(inputs)  # a reporter is active: InpaintStream
    unary = clients["inpaint"].run(inputs)
    assert events and events[-1][0] == events[-1][1]
    assert [done for done, _ in events] == sorted({done for done, _ in events})  # strictly increasing
    assert len({total for _, total in events}) == 1
    assert streamed.image.tobytes() == unary.image.tobytes()


def test_metrics_endpoint_counts_calls(
    services: dict[str, RunningService], clients: dict[str, StageClient]
) -> None:
    clients["pose"].info()
    url = f"http://127.0.0.1:{services['pose'].metrics_port}/metrics"
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    assert 'tryon_grpc_requests_total{code="OK",method="GetInfo",stage="pose"}' in body
    assert 'tryon_stage_ready{stage="pose"} 1.0' in body


# ------------------------------------------------------------------------------------- bad input


def _call_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=30)
    return error.value


def test_undecodable_image_is_invalid_argument_naming_the_field(services: dict[str, RunningService]) -> None:
    with _channel(services["pose"]) as channel:
        error = _call_error(
            pose_pb2_grpc.PoseStub(channel).Estimate,
            pose_pb2.EstimatePoseRequest(person=common_pb2.Image(data=b"\x89PNG garbage")),
        )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("person:")


def test_no_person_is_invalid_argument(services: dict[str, RunningService]) -> None:
    empty_room = np.full((400, 300, 3), 180, np.uint8)
    with _channel(services["pose"]) as channel:
        error = _call_error(
            pose_pb2_grpc.PoseStub(channel).Estimate,
            pose_pb2.EstimatePoseRequest(person=common_pb2.Image(data=imaging.encode_png(empty_room))),
        )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no person" in error.details()


def _blend_request(person: np.ndarray, mask: np.ndarray, face: np.ndarray) -> blend_pb2.BlendRequest:
    encoded = common_pb2.Image(data=imaging.encode_png(person))
    return blend_pb2.BlendRequest(
        person=encoded, generated=encoded,
        clothing_mask=common_pb2.Image(data=imaging.encode_png(mask)),
        face_mask=common_pb2.Image(data=imaging.encode_png(face)),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("mask_shape", "mask_value", "field", "message"),
    [((100, 80), 255, "clothing_mask", "mask is 80x100"), ((128, 96), 0, "clothing_mask", "empty")],
    ids=["mismatched-size", "empty"],
)
def test_bad_masks_are_invalid_argument(
    services: dict[str, RunningService],
    mask_shape: tuple[int, int],
    mask_value: int,
    field: str,
    message: str,
) -> None:
    person = np.full((128, 96, 3), 100, np.uint8)
    request = _blend_request(person, np.full(mask_shape, mask_value, np.uint8), np.zeros((128, 96), np.uint8))
    with _channel(services["blend"]) as channel:
        error = _call_error(blend_pb2_grpc.BlendStub(channel).Blend, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field) and message in error.details()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"steps": 0}, "options.steps"),
        ({"strength": 2.0}, "options.strength"),
        ({"guidance_scale": -1}, "options.guidance_scale"),
    ],
)
def test_out_of_range_options_are_invalid_argument(
    services: dict[str, RunningService], stage_inputs: dict[str, object], options: dict, field: str
) -> None:
    inputs = stage_inputs["inpaint"]
    request = inpaint_pb2.InpaintRequest(
        person=common_pb2.Image(data=imaging.encode_png(inputs.person)),
        clothing_mask=common_pb2.Image(data=imaging.encode_png(inputs.clothing_mask)),
        warped_garment=common_pb2.Image(data=imaging.encode_png(inputs.warped_garment)),
        pose_image=common_pb2.Image(data=imaging.encode_png(inputs.pose_image)),
        options=common_pb2.GenerationOptions(**options),
    )
    with _channel(services["inpaint"]) as channel:
        error = _call_error(inpaint_pb2_grpc.InpaintStub(channel).Inpaint, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.details()


def _png(image: np.ndarray) -> common_pb2.Image:
    return protocol.image_to_proto(image, "png")


def _raw(image: np.ndarray) -> common_pb2.Image:
    return protocol.image_to_proto(image, "raw")


def _inpaint_request(inputs: InpaintInput, **replace: common_pb2.Image) -> inpaint_pb2.InpaintRequest:
    fields = {
        "person": _png(inputs.person),
        "clothing_mask": _png(inputs.clothing_mask),
        "warped_garment": _png(inputs.warped_garment),
        "pose_image": _png(inputs.pose_image),
    }
    return inpaint_pb2.InpaintRequest(**{**fields, **replace})


def _warp_request(inputs: WarpInput, **replace: object) -> warp_pb2.WarpGarmentRequest:
    fields = {
        "garment": _png(inputs.garment),
        "pose": protocol.keypoints_to_proto(inputs.keypoints),
        "target_width": inputs.target_size[1],
        "target_height": inputs.target_size[0],
    }
    return warp_pb2.WarpGarmentRequest(**{**fields, **replace})


def _blend_request_from(inputs: BlendInput, **replace: common_pb2.Image) -> blend_pb2.BlendRequest:
    fields = {
        "person": _png(inputs.person),
        "generated": _png(inputs.generated),
        "clothing_mask": _png(inputs.clothing_mask),
        "face_mask": _png(inputs.face_mask),
    }
    return blend_pb2.BlendRequest(**{**fields, **replace})


GARBAGE = common_pb2.Image(data=b"GIF89a not really")
SMALL_MASK = np.full((40, 30), 255, np.uint8)
BOMB = png_header_only(20000, 20000)
#: (stage, bad request built from that stage's valid inputs, the field the error must name)
BAD_REQUESTS = {
    "segmentation-undecodable-person": (
        "segmentation", lambda inputs: segmentation_pb2.SegmentRequest(person=GARBAGE), "person",
    ),
    "segmentation-unknown-category": (
        "segmentation",
        lambda inputs: segmentation_pb2.SegmentRequest(person=_png(inputs.person), category=42),
        "category",
    ),
    "segmentation-raw-pixels-of-the-wrong-size": (
        "segmentation",
        lambda inputs: segmentation_pb2.SegmentRequest(
            person=common_pb2.Image(data=bytes(100), media_type=imaging.RAW_MEDIA_TYPE, width=64, height=64)
        ),
        "person",
    ),
    "pose-decompression-bomb": (
        "pose", lambda inputs: pose_pb2.EstimatePoseRequest(person=common_pb2.Image(data=BOMB)), "person",
    ),
    "pose-undecodable-person": (
        "pose", lambda inputs: pose_pb2.EstimatePoseRequest(person=GARBAGE), "person",
    ),
    "warp-undecodable-garment": ("warp", lambda inputs: _warp_request(inputs, garment=GARBAGE), "garment"),
    "warp-17-keypoints": (
        "warp",
        lambda inputs: _warp_request(inputs, pose=protocol.keypoints_to_proto(inputs.keypoints[:17])),
        "pose",
    ),
    "warp-zero-target-width": ("warp", lambda inputs: _warp_request(inputs, target_width=0), "target_width"),
    # a raw 4096 x 4096 RGBA reply is 64 MiB: refused before any work, since it could not be sent back
    "warp-target-over-the-message-limit": (
        "warp",
        lambda inputs: _warp_request(
            inputs, garment=_raw(inputs.garment), target_width=4096, target_height=4096
        ),
        "target_width",
    ),
    "inpaint-mismatched-garment": (
        "inpaint",
        lambda inputs: _inpaint_request(inputs, warped_garment=_png(inputs.warped_garment[:-8])),
        "warped_garment",
    ),
    "inpaint-mismatched-pose-image": (
        "inpaint", lambda inputs: _inpaint_request(inputs, pose_image=_png(inputs.pose_image[:, :-8])),
        "pose_image",
    ),
    "inpaint-empty-mask": (
        "inpaint",
        lambda inputs: _inpaint_request(inputs, clothing_mask=_png(np.zeros_like(inputs.clothing_mask))),
        "clothing_mask",
    ),
    "blend-mismatched-generated": (
        "blend", lambda inputs: _blend_request_from(inputs, generated=_png(inputs.generated[:-1])),
        "generated",
    ),
    "blend-mismatched-face-mask": (
        "blend", lambda inputs: _blend_request_from(inputs, face_mask=_png(SMALL_MASK)), "face_mask",
    ),
}  # fmt: skip
STUB_METHODS = {
    "segmentation": (segmentation_pb2_grpc.SegmentationStub, "Segment"),
    "pose": (pose_pb2_grpc.PoseStub, "Estimate"),
    "warp": (warp_pb2_grpc.WarpStub, "WarpGarment"),
    "inpaint": (inpaint_pb2_grpc.InpaintStub, "Inpaint"),
    "blend": (blend_pb2_grpc.BlendStub, "Blend"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_requests_are_invalid_argument_naming_the_field(
    case: str,
    services: dict[str, RunningService],
    clients: dict[str, StageClient],  # requested so the services are SERVING first
    stage_inputs: dict[str, object],
) -> None:
    stage, build, field = BAD_REQUESTS[case]
    stub_class, method = STUB_METHODS[stage]
    with _channel(services[stage]) as channel:
        error = _call_error(getattr(stub_class(channel), method), build(stage_inputs[stage]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith(f"{field}:"), error.details()


def test_client_maps_invalid_argument_to_stage_input_error(
    clients: dict[str, StageClient], stage_inputs: dict[str, object]
) -> None:
    warp_input = stage_inputs["warp"]
    flat = np.full((300, 200, 3), 128, np.uint8)
    with pytest.raises(StageInputError, match="garment could not be separated"):
        clients["warp"].run(
            WarpInput(garment=flat, keypoints=warp_input.keypoints, target_size=warp_input.target_size)
        )


# ------------------------------------------------------------------------------------- load and lifecycle


def test_one_millisecond_deadline_is_deadline_exceeded(
    clients: dict[str, StageClient], stage_inputs: dict[str, object]
) -> None:
    from tryon.client import RemoteStageError

    with pytest.raises(RemoteStageError) as error:
        clients["segmentation"].run(stage_inputs["segmentation"], timeout_s=0.001)
    assert error.value.code is grpc.StatusCode.DEADLINE_EXCEEDED


def _metric(service: RunningService, name: str, **labels: str) -> float:
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).read().decode()
    )
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(name + "{") and all(label in line for label in wanted)
    )


def test_twenty_concurrent_calls_all_succeed_through_refusals(
    services: dict[str, RunningService],
    clients: dict[str, StageClient],
    local: dict[str, StageBackend],
    stage_inputs: dict[str, object],
) -> None:
    """Segmentation (a GPU stage: 1 running + TRYON_MAX_QUEUE=4 waiting) refuses most of 20 simultaneous
    calls; the client retries the refusals within each call's deadline, so every caller gets its answer."""
    service = services["segmentation"]
    inputs = stage_inputs["segmentation"]
    labels = {"method": "Segment", "code": "RESOURCE_EXHAUSTED"}
    refused_before = _metric(service, "tryon_grpc_requests_total", **labels)
    started = time.monotonic()
    with futures.ThreadPoolExecutor(20) as pool:
        jobs = [pool.submit(clients["segmentation"].run, inputs, timeout_s=120) for _ in range(20)]
        outputs = [job.result(timeout=150) for job in jobs]  # raises if any call failed
    expected = local["segmentation"].run(inputs)
    assert all(np.array_equal(output.clothing_mask, expected.clothing_mask) for output in outputs)
    refused = _metric(service, "tryon_grpc_requests_total", **labels) - refused_before
    assert refused >= 10  # the stage really was saturated: at most 5 of the first wave fit
    assert _metric(service, "tryon_grpc_in_flight", method="Segment") == 0  # nothing left behind
    assert time.monotonic() - started < 120


def _in_flight(service: RunningService, method: str) -> float:
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).read().decode()
    )
    for line in body.splitlines():
        if line.startswith("tryon_grpc_in_flight{") and f'method="{method}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sigterm_during_calls_lets_them_finish(stage_inputs: dict[str, object]) -> None:
    from tryon.client import InpaintClient, RemoteStageError

    calls = 16
    service = start_service("inpaint")  # one call runs at a time: the others wait in its queue
    client = InpaintClient(service.address)
    inputs = stage_inputs["inpaint"]
    side = 1024  # larger inputs, so the calls take long enough to be caught in flight
    large = InpaintInput(
        person=imaging.resize_to(inputs.person, side, side),
        clothing_mask=imaging.resize_to(inputs.clothing_mask, side, side),
        warped_garment=imaging.resize_to(inputs.warped_garment, side, side),
        pose_image=imaging.resize_to(inputs.pose_image, side, side),
    )
    try:
        client.setup()
        with futures.ThreadPoolExecutor(calls) as pool:
            pending = [pool.submit(client.run, large) for _ in range(calls)]
            deadline = time.monotonic() + 30
            while (in_flight := _in_flight(service, "Inpaint")) < 3 and time.monotonic() < deadline:
                time.sleep(0.002)
            assert in_flight >= 3, "calls did not reach the service"
            service.process.send_signal(signal.SIGTERM)
            succeeded, refused = 0, 0
            for job in pending:
                try:
                    assert job.result(timeout=60).image.shape == (side, side, 3)
                    succeeded += 1
                except RemoteStageError as error:
                    # Arrived after shutdown began: refused before any work (gRPC answers UNAVAILABLE or
                    # CANCELLED depending on how far the stream got), never cut off mid-work.
                    assert error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), error
                    refused += 1
        assert succeeded >= in_flight  # every call in flight at SIGTERM finished
        assert succeeded + refused == calls
        assert service.process.wait(timeout=30) == 0
    finally:
        client.close()
        service.stop()


def test_random_malformed_requests_get_invalid_argument_and_never_crash(
    services: dict[str, RunningService], clients: dict[str, StageClient]
) -> None:
    """A seeded fuzz: garbage, truncated and mis-sized images, wild keypoints and options, every service.

    Every request has at least one image that cannot be decoded, so none may succeed; each must be refused
    with INVALID_ARGUMENT whose message starts with one of the request's own fields. (``clients`` is
    requested so the services are SERVING first.)
    """
    from tryon.v1 import segmentation_pb2, segmentation_pb2_grpc, warp_pb2, warp_pb2_grpc

    rng = np.random.default_rng(7)
    valid_png = imaging.encode_png(np.full((200, 150, 3), 120, np.uint8))

    def image(bad: bool = False) -> common_pb2.Image:
        kind = rng.choice([0, 1, 2, 3, 6]) if bad else rng.integers(9)  # these kinds can never be decoded
        if kind == 0:
            return common_pb2.Image(data=rng.bytes(int(rng.integers(0, 500))))
        if kind == 1:
            return common_pb2.Image(data=valid_png[: int(rng.integers(len(valid_png)))])
        if kind == 2:  # raw pixels whose byte count does not match the claimed size
            width, height = (int(v) for v in rng.integers(0, 50, size=2))
            return common_pb2.Image(data=rng.bytes(300), media_type="image/x-raw", width=width, height=height)
        if kind == 3:  # a size claim far beyond the pixel limit
            return common_pb2.Image(
                data=b"", media_type="image/x-raw", width=4_000_000_000, height=4_000_000_000
            )
        if kind == 4:
            return common_pb2.Image(data=imaging.encode_png(np.zeros((37, 41), np.uint8)))
        if kind == 5:  # a bitmask of the wrong length, or of a size beyond the limit
            width, height = (int(v) for v in rng.choice([0, 150, 200, 70_000], size=2))
            return common_pb2.Image(data=rng.bytes(3750), media_type=BITMASK, width=width, height=height)
        if kind == 6:  # deflated garbage, or a deflate bomb: 4 bytes of pixels per pixel and more
            data = rng.bytes(100) if rng.integers(2) else zlib.compress(bytes(200 * 150 * 4 + 1))
            return common_pb2.Image(data=data, media_type=DEFLATE, width=150, height=200)
        if kind == 7:  # compact forms where an image is expected, bad and good
            return common_pb2.Image(data=bytes(3750), media_type=BITMASK, width=150, height=200)
        return common_pb2.Image(data=valid_png)

    def patch() -> common_pb2.ImagePatch:
        x, y = (int(v) for v in rng.choice([0, 10, 149, 2**31], size=2))
        return common_pb2.ImagePatch(image=image(), x=x, y=y)

    def images(*names: str) -> dict[str, common_pb2.Image]:
        bad = names[int(rng.integers(len(names)))]
        return {name: image(bad=name == bad) for name in names}

    def pose() -> common_pb2.BodyPose:
        count = int(rng.choice([0, 5, 18]))
        return common_pb2.BodyPose(
            keypoints=[
                common_pb2.Keypoint(x=float(rng.uniform(-1e9, 1e9)), y=float(rng.uniform(-1e3, 1e3)),
                                    confidence=float(rng.uniform(0, 1.5)))
                for _ in range(count)
            ]
        )  # fmt: skip

    channels = {stage: _channel(service) for stage, service in services.items()}
    # (stage, the request's fields an error may name, the call)
    requests = [
        ("segmentation", {"person", "category"}, lambda: segmentation_pb2_grpc.SegmentationStub(
            channels["segmentation"]).Segment(
            segmentation_pb2.SegmentRequest(**images("person"), category=int(rng.integers(0, 6))), timeout=30
        )),
        ("pose", {"person"}, lambda: pose_pb2_grpc.PoseStub(channels["pose"]).Estimate(
            pose_pb2.EstimatePoseRequest(**images("person")), timeout=30
        )),
        ("warp", {"garment", "pose", "target_width", "target_height", "category"},
         lambda: warp_pb2_grpc.WarpStub(channels["warp"]).WarpGarment(
            warp_pb2.WarpGarmentRequest(
                **images("garment"), pose=pose(), wire_version=int(rng.integers(0, 4)),
                target_width=int(rng.choice([0, 150, 99_999, 2**31])),
                target_height=int(rng.choice([0, 16, 200])), category=int(rng.integers(0, 5)),
            ),
            timeout=30,
        )),
        ("inpaint", {"person", "clothing_mask", "warped_garment", "pose_image", "options.steps",
                     "options.strength", "category", "pose", "warped_garment_patch"},
         lambda: inpaint_pb2_grpc.InpaintStub(channels["inpaint"]).Inpaint(
            inpaint_pb2.InpaintRequest(
                **images("person", "clothing_mask", "warped_garment", "pose_image"),
                options=common_pb2.GenerationOptions(
                    steps=int(rng.integers(0, 200)), strength=float(rng.uniform(-1, 2))
                ),
                **({"pose": pose(), "warped_garment_patch": patch()} if rng.integers(2) else {}),
            ),
            timeout=30,
        )),
        ("blend", {"person", "generated", "clothing_mask", "face_mask", "generated_patch"},
         lambda: blend_pb2_grpc.BlendStub(channels["blend"]).Blend(
            blend_pb2.BlendRequest(
                **images("person", "generated", "clothing_mask", "face_mask"),
                **({"generated_patch": patch(), "wire_version": 2} if rng.integers(2) else {}),
            ),
            timeout=30,
        )),
    ]  # fmt: skip
    fields_named: set[str] = set()
    try:
        for index in range(100):
            stage, fields, call = requests[index % len(requests)]
            with pytest.raises(grpc.RpcError) as error:
                call()
            code, details = error.value.code(), error.value.details()
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (index, stage, code, details)
            named = details.split(":", 1)[0]
            # "field: what is wrong", naming a real field (or a part of one: "generated_patch.image")
            assert named in fields or named.split(".")[0] in fields, (index, stage, details)
            fields_named.add(f"{stage}.{named}")
    finally:
        for channel in channels.values():
            channel.close()
    assert all(service.process.poll() is None for service in services.values())
    assert len(fields_named) >= 8  # the errors came from many fields, not one early check
