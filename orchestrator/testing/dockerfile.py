"""The runtime configuration an image gets from its Dockerfile: ENTRYPOINT, CMD, ENV, USER, EXPOSE.

No Docker engine runs on the project's machines, so the image is never built in tests; instead
the tests read what ``deploy/k8s/Dockerfile`` would give the container and run exactly that
command and environment as a local process. Only the forms ksaga's Dockerfile uses are accepted
(exec-form ENTRYPOINT/CMD, ``ENV KEY=VALUE`` without variable references); anything else is
refused with a message, so the reading can never drift silently from what Docker would do.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DockerfileError", "ImageConfig", "read_dockerfile"]


class DockerfileError(Exception):
    """A Dockerfile form this reader does not implement (or a malformed line)."""


@dataclass
class ImageConfig:
    """The final stage's runtime settings (what a container started from the image inherits)."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    exposed: list[int] = field(default_factory=list)


def read_dockerfile(path: Path) -> ImageConfig:
    stage: ImageConfig | None = None
    for keyword, rest in _instructions(path.read_text()):
        if keyword == "FROM":
            stage = ImageConfig()  # a new stage starts from its base, whose settings we ignore
            continue
        if stage is None:
            if keyword in ("ARG",):
                continue
            raise DockerfileError(f"{path}: {keyword} before the first FROM")
        if keyword in ("ENTRYPOINT", "CMD"):
            argv = _exec_form(path, keyword, rest)
            if keyword == "ENTRYPOINT":
                stage.entrypoint, stage.cmd = argv, []  # Docker resets an inherited CMD
            else:
                stage.cmd = argv
        elif keyword == "ENV":
            stage.env.update(_env(path, rest))
        elif keyword == "USER":
            stage.user = rest.strip()
        elif keyword == "WORKDIR":
            stage.workdir = rest.strip()
        elif keyword == "EXPOSE":
            stage.exposed += [int(p.split("/")[0]) for p in rest.split()]
    if stage is None:
        raise DockerfileError(f"{path}: no FROM")
    return stage


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, with continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    if pending:
        raise DockerfileError("the Dockerfile ends inside a continued line")
    return out


def _exec_form(path: Path, keyword: str, rest: str) -> list[str]:
    try:
        argv = json.loads(rest)
    except json.JSONDecodeError:
        argv = None
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise DockerfileError(
            f"{path}: {keyword} {rest!r} must be in exec form (a JSON array of strings): in shell"
            " form /bin/sh is PID 1 and SIGTERM never reaches ksaga"
        )
    return argv


def _env(path: Path, rest: str) -> dict[str, str]:
    pairs = {}
    for token in shlex.split(rest):
        key, eq, value = token.partition("=")
        if not eq:
            raise DockerfileError(f"{path}: use ENV KEY=VALUE, not the legacy ENV KEY VALUE")
        if "$" in value:
            raise DockerfileError(f"{path}: ENV {key} refers to a variable; write it out")
        pairs[key] = value
    return pairs
