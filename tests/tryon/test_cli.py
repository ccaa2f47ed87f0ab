"""The `tryon` command as a user runs it: real files, a real subprocess, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from tests.imagegen import draw_garment, png_header_only
from tryon import imaging
from tryon.cli import main
from tryon.types import GarmentCategory

RUN_AND_CHECK_TORCH = (
    "import sys; from tryon.cli import main; code = main(sys.argv[1:]); "
    "print('TORCH_IMPORTED' if 'torch' in sys.modules else 'TORCH_ABSENT'); sys.exit(code)"
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("photos")
    person, garment = folder / "person.png", folder / "garment.png"
    person.write_bytes(imaging.encode_png(skimage.data.astronaut()))
    garment.write_bytes(imaging.encode_png(draw_garment(GarmentCategory.UPPER_BODY, color=(30, 60, 200))))
    return person, garment


def test_run_writes_the_result_and_intermediates_without_importing_torch(
    photos: tuple[Path, Path], tmp_path: Path
) -> None:
    person, garment = photos
    output, intermediates = tmp_path / "out.png", tmp_path / "steps"
    completed = subprocess.run(
        [sys.executable, "-c", RUN_AND_CHECK_TORCH, "run", str(person), str(garment), "-o", str(output),
         "--backend", "lite", "--seed", "5", "--save-intermediates", str(intermediates)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "TORCH_ABSENT" in completed.stdout
    for stage in ("segmentation", "pose", "warp", "inpaint", "blend"):
        assert stage in completed.stderr  # the progress display names every stage
    # and nothing else: MediaPipe's native (absl, TF Lite) log lines are kept off stderr
    assert all(line.startswith(("[", "wrote ")) for line in completed.stderr.splitlines()), completed.stderr
    result = imaging.decode_image(output.read_bytes())
    assert result.shape == (1024, 1024, 3)
    assert {p.name for p in intermediates.iterdir()} >= {"clothing_mask.png", "pose.png", "keypoints.json"}
    keypoints = json.loads((intermediates / "keypoints.json").read_text())["keypoints"]
    assert len(keypoints) == 18


@pytest.mark.parametrize(
    ("make_inputs", "message"),
    [
        (lambda d, g: (d / "missing.jpg", g), "cannot read"),
        (lambda d, g: (_write(d / "text.png", b"hello"), g), "not a readable image"),
        (
            lambda d, g: (_write(d / "tiny.png", imaging.encode_png(np.zeros((50, 50, 3), np.uint8))), g),
            "too small",
        ),
        (lambda d, g: (_write(d / "cat.png", imaging.encode_png(skimage.data.chelsea())), g), "no person"),
        (lambda d, g: (_write(d / "bomb.png", png_header_only(20000, 20000)), g), "exceeds"),
    ],
    ids=["missing-file", "unreadable", "too-small", "no-person", "decompression-bomb"],
)
def test_bad_input_gives_one_line_error_and_exit_code_2(
    photos: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], make_inputs, message: str
) -> None:
    person, garment = make_inputs(tmp_path, photos[1])
    code = main(
        ["run", str(person), str(garment), "-o", str(tmp_path / "out.png"), "--backend", "lite", "-q"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("tryon: error:") and message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_inseparable_garment_is_exit_code_2(
    photos: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noise = np.random.default_rng(0).integers(0, 256, size=(400, 300, 3), dtype=np.uint8)
    garment = _write(tmp_path / "noise.png", imaging.encode_png(noise))
    code = main(
        ["run", str(photos[0]), str(garment), "-o", str(tmp_path / "o.png"), "--backend", "lite", "-q"]
    )
    assert code == 2
    assert "garment" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make_output", "message"),
    [
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "file.txt", b"x") / "out.png", "cannot write"),
        (lambda d: Path("/proc/out.png"), "cannot write"),
    ],
    ids=["directory", "under-a-file", "unwritable-folder"],
)
def test_unwritable_output_fails_before_the_pipeline_runs(
    photos: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_output,
    message: str,
) -> None:
    from tryon.pipeline import TryOnPipeline

    def never(*args: object) -> None:
        raise AssertionError("the pipeline was built before the output was checked")

    monkeypatch.setattr(TryOnPipeline, "from_settings", never)
    output = make_output(tmp_path)
    code = main(["run", str(photos[0]), str(photos[1]), "-o", str(output), "--backend", "lite", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("tryon: error: output:") and message in err
    assert len(err.splitlines()) == 1


def test_help_documents_the_run_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--category", "--backend", "--seed", "--save-intermediates", "-o OUTPUT"):
        assert option in help_text


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
