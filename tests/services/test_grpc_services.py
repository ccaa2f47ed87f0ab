"""The five stage services as real subprocesses (lite backends) on loopback, called over gRPC."""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.imagegen import draw_garment, person_photo
from tryon import imaging
from tryon.backends import create_backend
from tryon.client import ClientSettings, StageClient, remote_backends
from tryon.local_services import RunningService, running_services, start_service
from tryon.pipeline import TryOnPipeline
from tryon.settings import StageSettings
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
    StageOverloadedError,
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
)

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
        clothing_mask=segmentation.clothing_mask,
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
    stage: str, services: dict[str, RunningService], clients: dict[str, StageClient]
) -> None:
    with _channel(services[stage]) as channel:
        listed = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert SERVICE_NAMES[stage] in listed
    info = clients[stage].info()
    assert (info.stage, info.backend, info.device) == (stage, "lite", "cpu")


@pytest.mark.parametrize("stage", STAGES)
def test_remote_call_matches_the_in_process_stage(
    stage: str,
    clients: dict[str, StageClient],
    local: dict[str, StageBackend],
    stage_inputs: dict[str, object],
) -> None:
    inputs = stage_inputs[stage]
    _assert_same_output(clients[stage].run(inputs), local[stage].run(inputs))


def test_chain_through_five_services_equals_the_in_process_pipeline(
    clients: dict[str, StageClient], local: dict[str, StageBackend], person: np.ndarray
) -> None:
    garment = draw_garment(color=(40, 90, 200), size=(384, 512))
    over_grpc = TryOnPipeline(clients).run(person, garment, options=GenerationOptions(seed=4))
    in_process = TryOnPipeline(local).run(person, garment, options=GenerationOptions(seed=4))
    assert imaging.encode_png(over_grpc.image) == imaging.encode_png(in_process.image)


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


def test_twenty_concurrent_calls_succeed_or_are_refused_never_hang(
    clients: dict[str, StageClient], stage_inputs: dict[str, object]
) -> None:
    outcomes: list[str] = []

    def call() -> None:
        try:
            clients["segmentation"].run(stage_inputs["segmentation"], timeout_s=60)
            outcomes.append("ok")
        except StageOverloadedError:
            outcomes.append("refused")

    started = time.monotonic()
    with futures.ThreadPoolExecutor(20) as pool:
        for job in [pool.submit(call) for _ in range(20)]:
            job.result(timeout=90)
    assert len(outcomes) == 20
    assert set(outcomes) <= {"ok", "refused"}
    # segmentation is a GPU stage: 1 running + TRYON_MAX_QUEUE=4 waiting; the rest are refused at once.
    # (An abandoned call of an earlier test may still hold a slot, so "ok" can be fewer than 5.)
    assert 1 <= outcomes.count("ok") <= 20
    assert "refused" in outcomes
    assert time.monotonic() - started < 90


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
