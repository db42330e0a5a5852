"""Images: which exist locally and as whom they run, registry manifests, and the rehearsal's
offline builds (``docker build``, ``import``, ``tag``, ``rmi``; lakehouse_tasks.rehearsal).

Every command runs through :func:`.executor.run`: traced, counted, and failing as
:class:`~lakehouse_tasks.errors.EngineError` with the command's stderr.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import EngineError
from . import executor


def manifest_available(docker_cmd: Sequence[str], reference: str) -> tuple[bool, str]:
    """Whether a registry serves ``reference`` (``docker manifest inspect``), and why not."""
    try:
        executor.run([*docker_cmd, "manifest", "inspect", reference])
    except EngineError as exc:
        last = exc.stderr.splitlines()[-1] if exc.stderr else exc.message
        return False, last
    return True, ""


def local_image_users(
    docker_cmd: Sequence[str], references: Iterable[str]
) -> dict[str, str | None]:
    """The configured user (``Config.User``, "" = root) of each image present locally.

    Images absent locally map to ``None``. Two calls whatever the number of images: one
    ``docker image ls`` to learn which references exist, one ``docker image inspect``.
    """
    refs = sorted({r for r in references if r})
    result: dict[str, str | None] = dict.fromkeys(refs)
    if not refs:
        return result
    listed = executor.run([*docker_cmd, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
    present_tags = set(listed.split())
    present = [r for r in refs if r in present_tags or f"{r}:latest" in present_tags]
    if not present:
        return result
    out = executor.run(
        [
            *docker_cmd,
            "image",
            "inspect",
            "--format",
            "{{json .RepoTags}} {{json .Config.User}}",
            *present,
        ]
    )
    for line in out.splitlines():
        tags_text, _sep, user_text = line.strip().partition(" ")
        if not _sep:
            continue
        tags = set(json.loads(tags_text) or [])
        user = str(json.loads(user_text) or "")
        for ref in present:
            if ref in tags or f"{ref}:latest" in tags:
                result[ref] = user
    return result


# ---- the rehearsal's offline builds ----
def image_id(reference: str) -> str | None:
    """The image id of ``reference``, ``None`` when the engine does not have it."""
    try:
        return executor.run(
            [executor.docker_binary(), "image", "inspect", "--format", "{{.Id}}", reference]
        ).strip()
    except EngineError as exc:
        if "No such" in exc.stderr or "not found" in exc.stderr.lower():
            return None
        raise


def build(context: Path, tag: str, build_args: Mapping[str, str] | None = None) -> str:
    """``docker build --quiet`` of ``context`` as ``tag`` with the classic builder
    (``DOCKER_BUILDKIT=0``: it builds ``FROM scratch`` and local bases offline); the image id."""
    argv = [executor.docker_binary(), "build", "--quiet", "--tag", tag]
    for key, value in (build_args or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    argv.append(str(context))
    return executor.run(argv, env={"DOCKER_BUILDKIT": "0"}, what=f"docker build of {tag}").strip()


def import_rootfs(tarball: Path, tag: str, changes: Sequence[str] = ()) -> str:
    """``docker import`` of a root file system tarball as ``tag`` (``changes``: Dockerfile
    instructions such as ``ENV PATH=...``); the image id."""
    argv = [executor.docker_binary(), "import"]
    for change in changes:
        argv += ["-c", change]
    return executor.run([*argv, str(tarball), tag], what=f"docker import of {tag}").strip()


def tag(source: str, *targets: str) -> None:
    """Give image ``source`` each of the ``targets`` tags."""
    for target in targets:
        executor.run([executor.docker_binary(), "tag", source, target], what="docker tag")


def repository_tags(repository: str) -> list[str]:
    """``repository:tag`` of every local image of ``repository`` (untagged ones left out)."""
    out = executor.run(
        [executor.docker_binary(), "images", "--format", "{{.Repository}}:{{.Tag}}", repository]
    )
    return [ref for ref in out.split() if not ref.endswith(":<none>")]


def untag(references: Sequence[str]) -> bool:
    """``docker rmi`` of ``references`` (best effort: an image a container still uses stays);
    whether every one went."""
    if not references:
        return True
    try:
        executor.run([executor.docker_binary(), "rmi", *references], what="docker rmi")
    except EngineError:
        return False
    return True
