"""The command line: the ``lakehouse`` console script, and the ``invoke`` one of this project.

Both are :class:`LakehouseProgram`, invoke's own ``Program`` with the contract of
docs/EXIT_CODES.md on top:

- invoke's parser errors (an unknown flag or task, a flag without its value, a missing
  required argument) exit 2, not 1 (1 means "degraded" here), as one ``error:`` sentence that
  names the nearest known flag or task;
- invoke's core flags that promise something the tasks cannot keep are refused with exit 2
  before any task runs: ``--dry``/``-R`` (echo shell commands instead of running them: these
  tasks run docker, not shell commands, and a destructive task must never run under it),
  ``--warn-only``/``-w`` and ``--command-timeout``/``-T``; ``--echo``/``-e`` is honoured: every
  docker command line is echoed on stderr (as ``LAKEHOUSE_TRACE_DOCKER=1`` does);
- a closed pipe on stdout (``invoke --help | head``) ends the program quietly.

The project installs its ``invoke`` console script from this module (pyproject.toml), so that
bare ``invoke --help`` and the parser errors, which happen before ``tasks.py`` is imported, obey
the same contract. Without a ``tasks.py`` of this project it behaves like invoke's own program
(the refusals apply only to the lakehouse tasks).
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from typing import Any

from invoke import Exit, ParseError, Program

from . import __version__
from .errors import ExitCode

#: The core flags refused with exit 2, with the sentence that says why and what to use.
REFUSED_CORE_FLAGS = {
    "dry": "--dry (-R) only echoes shell commands, and lakehouse tasks run docker, not shell "
    "commands, so it would run the task for real; nothing was run: preview a deploy with "
    "`invoke deploy --dry-run` instead",
    "warn-only": "--warn-only (-w) has no effect on lakehouse tasks (their failures are exit "
    "codes, docs/EXIT_CODES.md); nothing was run: drop the flag",
    "command-timeout": "--command-timeout (-T) has no effect on lakehouse tasks; nothing was "
    "run: use the task's own --timeout (deploy, rollback) instead",
}

_UNKNOWN = re.compile(r"No idea what '(?P<token>.*)' is!")
_NEEDS_VALUE = re.compile(r"Flag <Argument: (?P<names>[^>]*)> needed value")
_MISSING = re.compile(
    r"'(?P<task>[^']+)' did not receive required positional arguments?: (?P<args>.*)"
)


def _flag_names(context: Any) -> list[str]:
    names: list[str] = []
    for arg in getattr(context, "args", {}).values():
        for name in arg.names:
            names.append(("-" if len(name) == 1 else "--") + name.replace("_", "-"))
    return names


def _is_lakehouse(collection: Any) -> bool:
    """Whether ``collection`` is this project's task namespace (not another tasks.py)."""
    tasks = getattr(collection, "tasks", {}) or {}
    if not tasks:
        return False
    return any(
        getattr(getattr(t, "body", None), "__module__", "").startswith("lakehouse_tasks")
        for t in tasks.values()
    )


class LakehouseProgram(Program):
    """invoke's ``Program`` with exit 2 for parser errors and the core-flag contract."""

    def _environment_names(self) -> list[str]:
        try:
            from .environment import known_environments
            from .paths import project_root

            return known_environments(project_root())
        except Exception:  # the hint is a nicety: never let it hide the parse error
            return []

    def explain(self, exc: ParseError) -> str:
        """The parse error as one sentence naming the problem and the nearest known name."""
        from .suggest import nearest

        text = str(exc).strip()
        match = _UNKNOWN.match(text)
        if match:
            token = match.group("token")
            if token.startswith("-"):
                flag = token.split("=", 1)[0]
                known = _flag_names(getattr(exc, "context", None))
                known += _flag_names(getattr(getattr(self, "parser", None), "initial", None))
                guess = nearest(flag, known)
                task = getattr(getattr(exc, "context", None), "name", None)
                where = task or "invoke"
                help_ = f"invoke --help {task}" if task else "invoke --help"
                fix = f"the nearest known flag is {guess}" if guess else f"see `{help_}`"
                return f"unknown flag {flag} for {where}; {fix}"
            if token in self._environment_names():
                return (
                    f"unexpected argument {token!r}: tasks take the environment as a flag; "
                    f"write --env {token}"
                )
            names = list(getattr(getattr(self, "collection", None), "task_names", {}) or [])
            guess = nearest(token, names)
            fix = (
                f"the nearest known task is {guess}" if guess else "`invoke --list` lists the tasks"
            )
            return f"unknown task or argument {token!r}; {fix}"
        match = _NEEDS_VALUE.match(text)
        if match:
            names = [n.strip() for n in match.group("names").split(",")]
            flag = "--" + max(names, key=len).replace("_", "-")
            return f"{flag} needs a value; write {flag} VALUE (see `invoke --help TASK`)"
        match = _MISSING.match(text)
        if match:
            task = match.group("task")
            args = [a.strip(" '") for a in match.group("args").split(",")]
            flags = " ".join(f"--{a.replace('_', '-')} VALUE" for a in args)
            return f"{task} needs {flags}; see `invoke --help {task}`"
        return f"{text.rstrip('!.')}; see `invoke --help`"

    def _parse_error(self, exc: ParseError) -> Exit:
        return Exit(message=f"error: {self.explain(exc)}.", code=int(ExitCode.BAD_INPUT))

    # ---- help and --list ---------------------------------------------------------------------
    def _make_pairs(self, coll: Any, ancestors: list[str] | None = None) -> list[Any]:
        """invoke's (name, help) pairs of ``--list`` with each task's whole first paragraph
        (invoke keeps only the docstring's first line, which cuts a sentence mid-phrase)."""
        pairs = super()._make_pairs(coll, ancestors)
        prefix = ".".join(ancestors or [])
        result = []
        for full, help_ in pairs:
            name = full.split(" (", 1)[0].strip().rstrip("*").lstrip(".")
            dotted = f"{prefix}.{name}" if prefix and not name.startswith(prefix) else name
            task = None
            for candidate in (dotted, name):
                try:
                    task = self.collection[candidate]
                    break
                except (KeyError, ValueError):
                    continue
            doc = inspect.getdoc(task) if task is not None else None
            result.append((full, first_paragraph(doc) if doc else help_))
        return result

    def print_task_help(self, name: str) -> None:
        """invoke's task help with the real kind of every value: ``INT`` for a number,
        ``VALUE ...`` and "(repeatable)" for a flag that can be given more than once."""
        context = self.parser.contexts[name]
        task = self.collection[name]
        numbers: frozenset[str] = getattr(task, "number_args", frozenset())
        original = context.help_for

        def help_for(flag: str) -> tuple[str, str]:
            spec, text = original(flag)
            arg = context.flags[flag]
            if arg.attr_name in numbers or arg.name in numbers:
                spec = spec.replace("=STRING", "=INT").replace(" STRING", " INT")
            elif arg.kind is list:
                spec = f"{spec}=VALUE"
                if "repeatable" not in (text or ""):
                    text = f"{text} (repeatable)".strip()
            return spec, text

        context.help_for = help_for
        try:
            super().print_task_help(name)
        finally:
            del context.help_for

    # ---- the parse steps -------------------------------------------------------------------
    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(argv)
        except ParseError as exc:
            raise self._parse_error(exc) from None

    def parse_collection(self) -> None:
        try:
            super().parse_collection()
        except ParseError as exc:
            raise self._parse_error(exc) from None
        if not _is_lakehouse(self.collection):
            return
        for flag, why in REFUSED_CORE_FLAGS.items():
            if self.args[flag].value:
                raise Exit(message=f"error: {why}.", code=int(ExitCode.BAD_INPUT))
        if self.args.echo.value:
            # Honoured: the docker command lines are what these tasks run.
            os.environ["LAKEHOUSE_TRACE_DOCKER"] = "1"

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise self._parse_error(exc) from None

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        try:
            super().run(argv, exit)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (`invoke --help | head`): nothing more to say to it.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            if exit:
                sys.exit(0)


def first_paragraph(doc: str) -> str:
    """A docstring's first paragraph on one line: what ``--list`` shows of a task."""
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


def _lakehouse_program() -> LakehouseProgram:
    from .tasks import ns

    return LakehouseProgram(namespace=ns, version=__version__, name="lakehouse", binary="lakehouse")


def main() -> None:
    """The ``lakehouse`` console script: the tasks of this package, wherever it runs."""
    _lakehouse_program().run()


def invoke_main() -> None:
    """The ``invoke`` console script: invoke's program (it loads ``tasks.py`` from the working
    directory), with the contract above for the lakehouse tasks."""
    from invoke import __version__ as invoke_version

    LakehouseProgram(
        name="Invoke", binary="inv[oke]", binary_names=["invoke", "inv"], version=invoke_version
    ).run()
