"""``python -m lakehouse_tasks.rehearsal build [--force] [KIND...] | hash | services | override``.

The command line of the stand-in builders. It lives here, not in the package's ``__init__``,
because ``override`` also writes the real tier's files: this module imports both
``lakehouse_tasks.rehearsal`` and ``lakehouse_tasks.rehearsal_real_override``, and neither
imports it.
"""

from __future__ import annotations

import json
import sys

from . import (
    SERVICE_STANDINS,
    STANDIN_IMAGES,
    StandinBuildError,
    build_standins,
    inputs_hash,
    write_override,
)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    if args and args[0] == "override":
        from ..rehearsal_real_override import write_real_override

        changed = write_override()
        changed = write_real_override() or changed
        print(f"compose/rehearsal*.yaml {'written' if changed else 'up to date'}")
        return 0
    if not args or args[0] not in {"build", "hash", "services"}:
        print(
            "usage: python -m lakehouse_tasks.rehearsal build [--force] [KIND...] | hash | "
            "services | override",
            file=sys.stderr,
        )
        return 2
    if args[0] == "hash":
        for kind in STANDIN_IMAGES:
            print(kind, inputs_hash(kind))
        return 0
    if args[0] == "services":
        print(json.dumps(SERVICE_STANDINS, indent=2))
        return 0
    try:
        refs = build_standins(force=force, kinds=args[1:] or None)
    except StandinBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for kind, ref in refs.items():
        print(f"{kind} {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
