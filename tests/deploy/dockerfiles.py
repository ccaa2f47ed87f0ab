"""Reading Dockerfiles structurally (no Docker engine here).

``render`` resolves what one build of a multi-stage, parameterised Dockerfile makes: the chain of stages
from the chosen target down to an outside base image, with build arguments and ENV substituted where Docker
substitutes them at build time (FROM, ARG, ENV, EXPOSE, COPY, WORKDIR, USER, ...; not in RUN, ENTRYPOINT or
HEALTHCHECK, whose variables the shell reads when the container runs).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Instructions whose arguments Docker expands with the build's ARG and ENV values.
_EXPANDED = {
    "ADD",
    "ARG",
    "COPY",
    "ENV",
    "EXPOSE",
    "FROM",
    "LABEL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
}
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)(?::?-([^}]*))?\}|([A-Za-z_]\w*))")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
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
    """Arguments of every ``instruction`` in one build stage (default: the last one), as written."""
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


def stage_names(text: str) -> list[str]:
    """The names (FROM ... AS name) of the build stages, in order."""
    return [stage[0][1].split()[-1] for stage in build_stages(text) if " AS " in f" {stage[0][1].upper()} "]


def substitute(value: str, variables: Mapping[str, str]) -> str:
    """Docker's build-time expansion: $NAME, ${NAME}, ${NAME:-default}; unknown names stay as they are
    (such as $PATH, which comes from the base image's environment)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in variables:
            return variables[name]
        if match.group(2) is not None:
            return match.group(2)
        return match.group(0)

    return _VARIABLE.sub(replace, value)


@dataclass
class Rendered:
    """What one build (target + build arguments) of a Dockerfile resolves to."""

    base_image: str  # the outside image the target's chain starts from, expanded
    chain: list[str]  # stage names from the root of the chain to the target
    steps: list[tuple[str, str]]  # every instruction along the chain, expanded as Docker does at build time
    env: dict[str, str] = field(default_factory=dict)  # the image's ENV (from this file; not the base's)
    args: dict[str, str] = field(default_factory=dict)  # every ARG declared along the chain, with its value

    def only(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.steps if name == instruction]

    def copied_from(self) -> dict[str, list[str]]:
        """COPY --from=<stage> sources and destinations, by stage."""
        found: dict[str, list[str]] = {}
        for arguments in self.only("COPY"):
            if arguments.startswith("--from="):
                source, *paths = arguments.split()
                found.setdefault(source.removeprefix("--from="), []).append(" ".join(paths))
        return found

    def entrypoint(self) -> list[str]:
        """The command the container runs: an exec-form ENTRYPOINT, or a `/bin/sh -c 'exec ... "$@"'` one with
        its variables read from the image's ENV."""
        (written,) = self.only("ENTRYPOINT")[-1:]
        command = json.loads(written)
        if command[:2] != ["/bin/sh", "-c"]:
            return command
        script = command[2]
        assert command[3:] == ["--"] and script.startswith("exec ") and script.endswith(' "$@"'), (
            "a shell entrypoint must exec the command (PID 1 gets SIGTERM) and pass the container's arguments"
        )
        return shlex.split(substitute(script.removeprefix("exec ").removesuffix(' "$@"'), self.env))

    def healthcheck(self) -> list[str]:
        (arguments,) = self.only("HEALTHCHECK")[-1:]
        return json.loads(arguments[arguments.index("CMD") + 3 :])

    def exposed(self) -> list[int]:
        return [int(port.split("/")[0]) for arguments in self.only("EXPOSE") for port in arguments.split()]


def _stages_by_name(text: str) -> dict[str, list[tuple[str, str]]]:
    return {
        stage[0][1].split()[-1]: stage for stage in build_stages(text) if " AS " in f" {stage[0][1].upper()} "
    }


def render(text: str, target: str | None = None, build_args: Mapping[str, str] | None = None) -> Rendered:
    """Resolve ``target`` (default: the last stage) with ``build_args`` as `docker build` would."""
    given = dict(build_args or {})
    declared_globally = dict.fromkeys(
        (arguments.split("=", 1)[0] for name, arguments in _global_arg_lines(text)), ""
    )
    global_values = {**declared_globally, **global_args(text)}
    global_values.update({name: value for name, value in given.items() if name in global_values})
    stages = _stages_by_name(text)
    stage = stages[target] if target else build_stages(text)[-1]
    return _render_stage(stage, stages, global_values, given)


def _global_arg_lines(text: str) -> list[tuple[str, str]]:
    lines = []
    for name, arguments in instructions(text):
        if name == "FROM":
            break
        if name == "ARG":
            lines.append((name, arguments))
    return lines


def _render_stage(
    stage: list[tuple[str, str]],
    stages: dict[str, list[tuple[str, str]]],
    global_values: dict[str, str],
    given: dict[str, str],
) -> Rendered:
    base = substitute(stage[0][1].split()[0], global_values)
    if base in stages:
        parent = _render_stage(stages[base], stages, global_values, given)
        rendered = Rendered(parent.base_image, list(parent.chain), list(parent.steps), dict(parent.env),
                            dict(parent.args))  # fmt: skip
    else:
        rendered = Rendered(base, [], [])
    name = stage[0][1].split()[-1] if " AS " in f" {stage[0][1].upper()} " else "(last)"
    rendered.chain.append(name)
    rendered.steps.append(("FROM", substitute(stage[0][1], global_values)))
    scope: dict[str, str] = dict(rendered.env)  # ENV carries into child stages; ARG values do not
    for instruction, arguments in stage[1:]:
        if instruction == "ARG":
            key, _, default = arguments.partition("=")
            if key in given:
                value = given[key]
            elif default:
                value = substitute(default, scope)
            else:
                value = global_values.get(key, "")
            scope[key] = rendered.args[key] = value
            rendered.steps.append((instruction, f"{key}={value}"))
        elif instruction == "ENV":
            pairs = [pair.split("=", 1) for pair in shlex.split(arguments)]
            # Every value of one ENV is expanded with the variables from before it (Docker's rule).
            expanded = {key: substitute(value, scope) for key, value in pairs}
            scope.update(expanded)
            rendered.env.update(expanded)
            rendered.steps.append((instruction, " ".join(f"{k}={v}" for k, v in expanded.items())))
        elif instruction in _EXPANDED:
            rendered.steps.append((instruction, substitute(arguments, scope)))
        else:
            rendered.steps.append((instruction, arguments))
    return rendered


def reachable_stages(text: str, target: str | None, build_args: Mapping[str, str]) -> set[str]:
    """The stages a build of ``target`` runs: its chain and, recursively, every stage it COPYs --from."""
    pending = [target] if target else [stage_names(text)[-1]]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        rendered = render(text, name, build_args)
        seen.update(rendered.chain)
        pending.extend(rendered.copied_from())
    return seen


def declared_args(text: str, stages: set[str]) -> set[str]:
    """ARGs a build reads: the global ones and those declared in ``stages``."""
    names = {arguments.split("=", 1)[0] for _, arguments in _global_arg_lines(text)}
    for name, stage in _stages_by_name(text).items():
        if name in stages:
            names |= {arguments.split("=", 1)[0] for instruction, arguments in stage if instruction == "ARG"}
    return names
