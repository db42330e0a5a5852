"""``rehearsal.*`` tasks: the offline stand-in images that let the whole lifecycle run here."""

from __future__ import annotations

from typing import Any

from invoke import Collection

from ._base import lakehouse_task


def ensure_standins(
    *, force: bool = False, kinds: list[str] | None = None, log: Any = None
) -> dict[str, str]:
    """Build the stand-in images that are missing or stale, reuse the others (by the hash of
    their inputs); a build failure is one sentence with exit 5. ``deploy --rehearsal`` calls
    this first, so the README's first command needs no separate build step."""
    from .. import rehearsal
    from ..errors import ConfigError, EngineError, ExitCode

    unknown = [k for k in kinds or [] if k not in rehearsal.STANDIN_IMAGES]
    if unknown:
        from ..suggest import did_you_mean

        raise ConfigError(
            f"Unknown stand-in kind {unknown[0]!r}"
            f"{did_you_mean(unknown[0], rehearsal.STANDIN_IMAGES)}; known kinds: "
            f"{', '.join(sorted(rehearsal.STANDIN_IMAGES))}."
        )
    from ..engine.client import Engine

    # No docker, or no engine: say that (exit 5), before asking it about images.
    Engine().server_version()
    try:
        return rehearsal.build_standins(force=force, kinds=kinds, log=log or (lambda _m: None))
    except rehearsal.StandinBuildError as exc:
        raise EngineError(
            f"Building the stand-in images failed: {str(exc).splitlines()[0]}; "
            "check that the engine runs and Debian's mirror is reachable.",
            ExitCode.ENGINE_UNREACHABLE,
        ) from None


@lakehouse_task(
    help={
        "force": "rebuild even when an image with the same inputs hash exists",
        "kind": "build only this stand-in kind (busybox, postgres); repeatable",
        "real": "also build the real-application images (spark, hive, s3, superset, airflow, "
        "nginx, prometheus) of the real tier "
        "(LAKEHOUSE_REHEARSAL_TIER=real, docs/REHEARSAL.md); minutes on a fresh machine",
    },
    iterable=["kind"],
)
def build(
    c: Any,
    force: bool = False,
    kind: list[str] | None = None,
    json_: bool = False,
    real: bool = False,
) -> None:
    """Build the stand-in images (cached by a hash of their inputs) and refresh the override.

    Afterwards every lifecycle task accepts --rehearsal (or LAKEHOUSE_REHEARSAL=1) to run the
    real compose files with the stand-ins swapped in.
    """
    from .. import rehearsal
    from ..ui import Output, Table

    out = Output(json_mode=json_)
    refs = ensure_standins(force=force, kinds=kind or None, log=out.info)
    rows = [
        {"kind": k, "image": ref, "result": rehearsal.LAST_BUILD.get(k, "")}
        for k, ref in refs.items()
    ]
    if real:
        from .. import rehearsal_real
        from ..errors import EngineError, ExitCode

        try:
            real_refs = rehearsal_real.build_real_images(force=force, log=out.info, jobs=4)
        except rehearsal.StandinBuildError as exc:
            raise EngineError(
                f"Building the real-application images failed: {str(exc).splitlines()[0]}; "
                "check that the engine runs and the package registries are reachable.",
                ExitCode.ENGINE_UNREACHABLE,
            ) from None
        rows += [
            {"kind": k, "image": ref, "result": rehearsal_real.LAST_BUILD.get(k, "")}
            for k, ref in real_refs.items()
        ]
        from ..rehearsal_real_override import write_real_override

        write_real_override()
    rehearsal.write_override()
    if json_:
        out.json({"images": rows, "override": str(rehearsal.OVERRIDE_PATH)})
        return
    out.table(
        Table(columns=[("kind", "Kind"), ("image", "Image"), ("result", "Result")], rows=rows)
    )
    out.success("Stand-ins ready: add --rehearsal to deploy, health, backup, teardown ...")


ns = Collection("rehearsal")
ns.add_task(build)
