"""``secrets.*`` tasks."""

from __future__ import annotations

from typing import Any

from invoke import Collection

from ._base import audited, default_env, lakehouse_task


@lakehouse_task(help={"rotate": "comma-separated secret names to replace even when already set"})
@audited("secrets.generate")
def generate(c: Any, env: str | None = None, rotate: str = "", json_: bool = False) -> None:
    """Fill every placeholder secret of an environment with a strong random value.

    Values are written to env/<env>.local.env (mode 0600); values already set are kept.
    """
    from ..secretgen import generate_secrets
    from ..ui import Output

    name = default_env(env)
    from ..parsing import parse_names

    result = generate_secrets(name, rotate=list(parse_names(rotate)))
    out = Output(json_mode=json_)
    if json_:
        out.json(result)
        return
    if result.filled:
        out.success(
            f"Filled {len(result.filled)} secrets in {result.file}: {', '.join(result.filled)}"
        )
    if result.rotated:
        out.success(f"Rotated {', '.join(result.rotated)} in {result.file}")
    if result.kept:
        out.info(f"Kept values already set in {result.file}: {', '.join(result.kept)}")
    if result.needs_value:
        out.warn(
            f"Still placeholders (not secrets, choose a value in {result.file}): "
            f"{', '.join(result.needs_value)}"
        )
    if not (result.filled or result.rotated):
        out.info(f"No placeholder secrets left in {name}; nothing written.")


ns = Collection("secrets")
ns.add_task(generate)
