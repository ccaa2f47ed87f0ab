"""Reading Dockerfiles structurally (no Docker engine here)."""

from __future__ import annotations

import json


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in logical]


def build_stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (FROM starts one; global ARGs before the first are dropped)."""
    stages: list[list[tuple[str, str]]] = []
    for name, arguments in instructions(text):
        if name == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((name, arguments))
    return stages


def only(text: str, instruction: str, stage_index: int = -1) -> list[str]:
    """Arguments of every ``instruction`` in one build stage (default: the final image)."""
    return [arguments for name, arguments in build_stages(text)[stage_index] if name == instruction]


def global_args(text: str) -> dict[str, str]:
    """ARG name=default lines before the first FROM."""
    found: dict[str, str] = {}
    for name, arguments in instructions(text):
        if name == "FROM":
            break
        if name == "ARG" and "=" in arguments:
            key, value = arguments.split("=", 1)
            found[key] = value
    return found


def healthcheck_command(text: str) -> list[str]:
    (arguments,) = only(text, "HEALTHCHECK")
    return json.loads(arguments[arguments.index("CMD") + 3 :])
