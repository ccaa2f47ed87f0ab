"""``tryon``: run a try-on on local files, and manage model weights.

    tryon run PERSON GARMENT -o OUT.png [--category ...] [--backend lite|full|auto] [--seed N]
    tryon demo [-o DIR] [--backend lite|full|auto]
    tryon models pull [--stage STAGE ...]
    tryon models list

Exit codes: 0 success, 2 bad input or usage, 3 model weights missing, 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TextIO

from tryon.native_logs import routed_native_logs
from tryon.settings import load_stage_settings
from tryon.stages import EXIT_BAD_INPUT, EXIT_NO_MODEL, EXIT_OK, MODEL_STAGES, STAGES
from tryon.types import (
    BackendKind,
    GarmentCategory,
    GenerationOptions,
    ModelUnavailableError,
    StageInputError,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_NO_MODEL", "EXIT_OK", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tryon",
        description="Virtual try-on: a photo of a person wearing a garment from a photo of each.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the backends do")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="try a garment on a person photo",
        description="Try GARMENT on the person in PERSON and write the result as a PNG. The result keeps the "
        "person photo's aspect ratio with its long side 1024 px.",
    )
    run.add_argument("person", type=Path, help="photo of one person, facing the camera (PNG, JPEG or WebP)")
    run.add_argument(
        "garment", type=Path, help="flat-lay or product photo of the garment on a plain background, or RGBA"
    )
    run.add_argument("-o", "--output", type=Path, required=True, help="where to write the result (PNG)")
    run.add_argument(
        "--category", choices=[c.value for c in GarmentCategory], default=GarmentCategory.UPPER_BODY.value,
        help="which body region the garment replaces (default: %(default)s)",
    )  # fmt: skip
    run.add_argument(
        "--backend", choices=[b.value for b in BackendKind], default=None,
        help="lite: weight-free CPU models; full: Segformer/OpenPose/SDXL; auto: full when its weights are "
        "present and a device can run them (default: TRYON_BACKEND or auto)",
    )  # fmt: skip
    run.add_argument("--seed", type=int, default=0, help="random seed; same inputs + seed = same output")
    run.add_argument("--steps", type=int, default=GenerationOptions.steps, help="diffusion steps (full)")
    run.add_argument(
        "--guidance", type=float, default=GenerationOptions.guidance_scale, help="guidance scale (full)"
    )
    run.add_argument("--strength", type=float, default=GenerationOptions.strength, help="denoise strength")
    run.add_argument("--prompt", default="", help="text describing the garment (full)")
    run.add_argument("--save-intermediates", type=Path, metavar="DIR", help="also write every stage's output")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress display")

    demo = commands.add_parser(
        "demo",
        help="try the built-in example (no photos of your own needed)",
        description="Run the try-on on the built-in example: a public-domain NASA portrait and a garment "
        "drawn by the project. Writes person.png, garment.png, result.png and side_by_side.png "
        "(person | garment | result) into DIR.",
    )
    demo.add_argument(
        "-o", "--output-dir", type=Path, default=Path("tryon-demo"), metavar="DIR",
        help="where to write the images (default: %(default)s)",
    )  # fmt: skip
    demo.add_argument(
        "--backend", choices=[b.value for b in BackendKind], default=BackendKind.LITE.value,
        help="which backend runs the example (default: %(default)s: weight-free, offline)",
    )  # fmt: skip
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress display")

    models = commands.add_parser("models", help="download or list the full backends' weights")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    pull = model_commands.add_parser("pull", help="download weights into the cache (needs a network)")
    pull.add_argument(
        "--stage", action="append", choices=MODEL_STAGES, help="only these stages (repeatable; default: all)"
    )
    model_commands.add_parser("list", help="show which weights are present")
    return parser


class CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """Logs to whatever ``sys.stderr`` is when a record is written (embedding apps and tests swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


class StageProgress:
    """One line per stage on stderr: ``[2/5] pose ... 41 ms``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.done = 0

    def __call__(self, stage: str, event: str, seconds: float) -> None:
        if event == "done":
            self.done += 1
            print(f"[{self.done}/{len(STAGES)}] {stage:<12} {seconds * 1000:7.0f} ms", file=self.stream)


def command_run(args: argparse.Namespace) -> int:
    from tryon import imaging
    from tryon.pipeline import TryOnPipeline, load_image, save_intermediates

    options = GenerationOptions(
        seed=args.seed,
        steps=args.steps,
        guidance_scale=args.guidance,
        strength=args.strength,
        prompt=args.prompt,
    )
    options.validate()
    check_writable(args.output, field="output")
    person = load_image(
        args.person, field="person", min_side=imaging.MIN_PERSON_SIDE, max_side=imaging.WORKING_LONG_SIDE
    )
    garment = load_image(
        args.garment,
        field="garment",
        mode="RGBA",
        min_side=imaging.MIN_GARMENT_SIDE,
        max_side=imaging.GARMENT_LONG_SIDE,
    )
    settings = load_stage_settings(backend=args.backend)
    pipeline = TryOnPipeline.from_settings(settings)
    try:
        pipeline.setup()
        result = pipeline.run(
            person,
            garment,
            category=GarmentCategory(args.category),
            options=options,
            progress=None if args.quiet else StageProgress(sys.stderr),
        )
    finally:
        pipeline.close()
    try:
        args.output.write_bytes(imaging.encode_png(result.image, compression=6))
    except OSError as error:  # e.g. the disk filled up during the run
        message = f"output: cannot write {args.output}: {error.strerror}"
        raise StageInputError(message, field="output") from error
    if args.save_intermediates:
        save_intermediates(result, args.save_intermediates)
    if not args.quiet:
        height, width = result.image.shape[:2]
        print(
            f"wrote {args.output} ({width}x{height}) in {result.timings['total'] * 1000:.0f} ms",
            file=sys.stderr,
        )
    return EXIT_OK


def command_demo(args: argparse.Namespace) -> int:
    from tryon import demo, imaging
    from tryon.pipeline import TryOnPipeline

    directory: Path = args.output_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".tryon-write-check"
        probe.touch()
        probe.unlink()
    except OSError as error:  # before minutes of work, not after
        message = f"output: cannot write to {directory}: {error.strerror}"
        raise StageInputError(message, field="output") from error
    person, garment = demo.example_person(), demo.example_garment()
    pipeline = TryOnPipeline.from_settings(load_stage_settings(backend=args.backend))
    try:
        pipeline.setup()
        result = pipeline.run(
            person,
            garment,
            options=GenerationOptions(seed=args.seed),
            progress=None if args.quiet else StageProgress(sys.stderr),
        )
    finally:
        pipeline.close()
    images = {
        "person.png": result.person,
        "garment.png": garment,
        "result.png": result.image,
        "side_by_side.png": demo.side_by_side(result.person, garment, result.image),
    }
    for name, image in images.items():
        (directory / name).write_bytes(imaging.encode_png(image, compression=6))
    print(f"person:       {demo.PERSON_CREDIT}")
    print(f"result:       {directory / 'result.png'}")
    print(f"side by side: {directory / 'side_by_side.png'} (person | garment | result)")
    return EXIT_OK


def check_writable(path: Path, *, field: str) -> None:
    """Fail now, not after a minutes-long run, when ``path`` cannot be written as a file: creates missing
    folders and opens the file for writing (removing it again if it did not exist)."""
    if path.is_dir():
        raise StageInputError(f"{field}: {path} is a directory; give a file name", field=field)
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except OSError as error:
        raise StageInputError(f"{field}: cannot write {path}: {error.strerror}", field=field) from error
    if not existed:
        path.unlink()


def command_models(args: argparse.Namespace) -> int:
    from tryon import models

    settings = load_stage_settings()
    if args.models_command == "list":
        for row in models.list_status(settings.models):
            state = "present" if row.present else "missing"
            print(f"{row.stage:<13} {row.name:<11} {state:<8} {row.source}  {row.detail}")
        return EXIT_OK
    stages = args.stage or list(MODEL_STAGES)
    models.pull(stages, settings.models, progress=True)
    print(f"pulled weights for: {', '.join(stages)}", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
        handlers=[CurrentStderrHandler()],
    )
    try:
        with routed_native_logs(keep_native=args.verbose):
            if args.command == "run":
                return command_run(args)
            if args.command == "demo":
                return command_demo(args)
            return command_models(args)
    except StageInputError as error:
        print(f"tryon: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModelUnavailableError as error:
        print(f"tryon: error: {error}", file=sys.stderr)
        return EXIT_NO_MODEL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
