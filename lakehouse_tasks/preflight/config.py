"""Checks of the configuration before a deploy: the merged compose config resolves, and the images exist (locally or to pull)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..checks import Check, failed, passed, warned
from ..errors import ConfigError, LakehouseError
from ..stack import Stack

if TYPE_CHECKING:
    from ..project import Project


def config_checks(project: Project) -> list[Check]:
    """The environment validates strictly and the merged compose config is valid."""
    from ..environment import validate

    checks: list[Check] = []
    try:
        validate(project.env, strict=True)
        checks.append(passed("environment", f"{project.env.name} validates"))
    except ConfigError as exc:
        checks.append(failed("environment", exc.message, "fix the environment as the message says"))
    try:
        project.compose.config()
        checks.append(passed("compose config", f"{len(project.stack.active)} services"))
    except LakehouseError as exc:
        checks.append(failed("compose config", exc.message, "fix the compose files or variables"))
    return checks


def image_checks(
    stack: Stack,
    present: dict[str, str | None],
    *,
    pullable: Callable[[str], tuple[bool, str]] | None = None,
    offer_rehearsal: bool = False,
) -> list[Check]:
    """One check per image (naming the services using it): present locally, or built by a
    ``build:`` section (warn: will be built); with ``pullable`` (``--pull-check``) the registry
    is asked about every image that is not built here. With ``offer_rehearsal`` (a real,
    not a rehearsal, run) the fix of a missing image also offers ``--rehearsal``, the offline
    stand-ins that need no registry."""
    offline = (
        "; without a registry, rehearse offline with --rehearsal (stand-in images)"
        if offer_rehearsal
        else ""
    )
    users: dict[str, list[str]] = {}
    built: set[str] = set()
    for name, svc in sorted(stack.active.items()):
        users.setdefault(svc.image, []).append(name)
        if svc.build:
            built.add(svc.image)
    checks: list[Check] = []
    for image, services in sorted(users.items()):
        label = f"image {image}"
        used_by = ", ".join(services)
        local = bool(present.get(image))
        if image in built:
            if not local:
                checks.append(warned(label, f"not built yet (for {used_by}): will be built", ""))
            continue
        if pullable is not None:
            ok, why = pullable(image)
            if not ok and not local:
                checks.append(
                    failed(
                        label,
                        f"neither local nor pullable ({why}); needed by {used_by}",
                        "check the registry is reachable and the tag exists, or `docker load` it"
                        + offline,
                    )
                )
                continue
            if not ok:
                checks.append(
                    warned(
                        label,
                        f"present locally but the registry did not confirm it ({why})",
                        "offline hosts cannot check for updates; the local image will be used",
                    )
                )
                continue
        if not local:
            checks.append(
                failed(
                    label,
                    f"not present locally; needed by {used_by}",
                    f"`docker pull {image}` (or `docker load` it); --pull-check asks the registry"
                    + offline,
                )
            )
    if not checks:
        checks.append(passed("images", f"{len(users)} images present"))
    return checks
