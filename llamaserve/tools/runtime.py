"""Tool runtimes: where a tool call runs when the x-tool-runtime header (or --tools-runtime) names one
instead of this machine. The spec comes from a client, and its target lands on a command line, so a target
that could read as an option (a leading '-') is refused, as llama-server refuses it; an unknown runtime is an
error, never a silent fallback to the host."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llamaserve.errors import ServerError

ENGINES = ("docker", "podman")
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SSH_TARGET = re.compile(r"[A-Za-z0-9._@][A-Za-z0-9._@-]*")


class RuntimeRefused(ServerError):
    """A runtime spec that names nothing this server can run tools in (500, llama-server's status)."""


@dataclass(frozen=True)
class RuntimeSpec:
    kind: str  # "container" (attach to a running one), "image" (--tools-runtime: a container of our own), "ssh"
    engine: str  # docker or podman ("" for ssh)
    target: str  # container id, image name or ssh destination


def parse_runtime(spec: str, *, for_call: bool) -> RuntimeSpec:
    """Raises RuntimeRefused with llama-server's messages. A call may only attach to a running container;
    spawning one from an image belongs to --tools-runtime."""
    for engine in ENGINES:
        if spec.startswith(f"{engine}-container:"):
            target = spec[len(engine) + len("-container:"):]
            if not _CONTAINER_ID.fullmatch(target):
                raise RuntimeRefused(f"invalid container id: {target}")
            return RuntimeSpec("container", engine, target)
        if spec.startswith(f"{engine}:"):
            target = spec[len(engine) + 1:]
            if for_call:
                raise RuntimeRefused(f"tool runtime must name a running container: {spec}")
            if not target:
                raise RuntimeRefused(f"--tools-runtime {engine}:<image> requires an image name")
            return RuntimeSpec("image", engine, target)
    if spec.startswith("ssh:"):
        target = spec[4:]
        if not _SSH_TARGET.fullmatch(target):
            raise RuntimeRefused(f"invalid ssh target: {target}")
        return RuntimeSpec("ssh", "", target)
    raise RuntimeRefused(f"unknown tool runtime: {spec}" if for_call else f"unknown --tools-runtime option: {spec}")
