"""Confirmation rules for destructive actions (teardown with volumes, restore).

* ``--yes`` confirms without asking.
* Without a terminal (and without ``--yes``) the action is refused, exit 7: a script must say
  what it means.
* On a terminal, dev asks y/N; staging and prod ask the user to type the environment's name,
  so a confirmation meant for dev can never destroy prod by habit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO

from .errors import RefusedError

#: Environments whose destructive actions need the environment's name typed back.
TYPE_NAME_ENVIRONMENTS = frozenset({"staging", "prod"})


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def confirm_destructive(
    action: str,
    environment: str,
    *,
    yes: bool = False,
    yes_flag: str = "--yes",
    is_tty: bool | None = None,
    ask: Callable[[str], str] | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Return when ``action`` on ``environment`` is confirmed; raise RefusedError otherwise.

    :param action: what will happen, as a verb phrase ("remove every volume of prod").
    :param is_tty: whether a person can answer (default: stdin is a terminal).
    :param ask: reads one answer after printing a prompt (default: :func:`input` on stderr).
    """
    if yes:
        return
    if is_tty is None:
        is_tty = stdin_is_tty()
    if not is_tty:
        raise RefusedError(
            f"Refusing to {action} without confirmation: no terminal to ask on; "
            f"pass {yes_flag} to confirm."
        )
    out = stream or sys.stderr
    if ask is None:

        def ask(prompt: str) -> str:
            out.write(prompt)
            out.flush()
            return sys.stdin.readline()

    if environment in TYPE_NAME_ENVIRONMENTS:
        answer = ask(f"This will {action}. Type the environment name ({environment}) to go on: ")
        if answer.strip() != environment:
            raise RefusedError(
                f"Refusing to {action}: the typed name did not match {environment!r}."
            )
        return
    answer = ask(f"This will {action}. Continue? [y/N] ")
    if answer.strip().lower() not in {"y", "yes"}:
        raise RefusedError(f"Refusing to {action}: not confirmed.")
