"""The committed stubs in tryon/v1 are exactly what protos/ generates, and they import."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import gen_protos  # noqa: E402

STAGES = ("segmentation", "pose", "warp", "inpaint", "blend")


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    generated = gen_protos.generate(tmp_path)
    assert generated, "protoc generated nothing"
    stale = []
    for fresh in generated:
        committed = REPO / fresh.relative_to(tmp_path)
        if not committed.exists() or committed.read_bytes() != fresh.read_bytes():
            stale.append(str(fresh.relative_to(tmp_path)))
    extra = {p.relative_to(REPO) for p in (REPO / "tryon" / "v1").glob("*.py*")} - {
        p.relative_to(tmp_path) for p in generated
    }
    assert not stale, f"stale stubs, run `make protos`: {stale}"
    assert not extra, f"stubs without a .proto: {extra}"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_stubs_import_and_define_the_service(stage: str) -> None:
    messages = importlib.import_module(f"tryon.v1.{stage}_pb2")
    services = importlib.import_module(f"tryon.v1.{stage}_pb2_grpc")
    service_name = stage.capitalize()
    descriptor = messages.DESCRIPTOR.services_by_name[service_name]
    assert descriptor.full_name == f"tryon.v1.{service_name}"
    assert "GetInfo" in descriptor.methods_by_name
    assert hasattr(services, f"add_{service_name}Servicer_to_server")
    assert hasattr(services, f"{service_name}Stub")


def test_protos_document_the_coco18_order_and_an_unspecified_default() -> None:
    from tryon.types import COCO18_NAMES
    from tryon.v1 import common_pb2

    comment = (REPO / "protos/tryon/v1/common.proto").read_text()
    for index, name in enumerate(COCO18_NAMES):
        assert f"{index} {name.replace('_', ' ')}" in comment
    assert (
        common_pb2.DESCRIPTOR.enum_types_by_name["GarmentCategory"]
        .values_by_number[0]
        .name.endswith("UNSPECIFIED")
    )
