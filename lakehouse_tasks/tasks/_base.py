"""What every task module shares: the error boundary, common flags and project loading.

Tasks stay thin: parse flags, build objects, call a plain function that returns data, render.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from invoke import Exit, Task
from invoke import task as invoke_task

from ..errors import LakehouseError

if TYPE_CHECKING:
    from ..project import Project

F = TypeVar("F", bound=Callable[..., Any])

#: Help text of the flags many tasks share, so every task describes them the same way.
COMMON_HELP = {
    "env": "environment to act on: dev, staging, prod (default: $LAKEHOUSE_ENV or dev)",
    "env_file": "extra dotenv file layered above env/<env>.env and env/<env>.local.env "
    "(repeatable)",
    "json_": "print machine-readable JSON on stdout instead of a table",
    "rehearsal": "run against the offline stand-in images (also $LAKEHOUSE_REHEARSAL=1)",
}


def default_env(env: str | None) -> str:
    return env or os.environ.get("LAKEHOUSE_ENV") or "dev"


def known_env(env: str | None) -> str:
    """:func:`default_env`, checked against env/<name>.env for the tasks that do not load the
    environment (history, lock.*): a typo is an error naming the nearest environment."""
    from ..environment import require_known_environment
    from ..paths import project_root

    name = default_env(env)
    require_known_environment(project_root(), name)
    return name


def rehearsal_mode(flag: bool | None) -> bool:
    if flag:
        return True
    return os.environ.get("LAKEHOUSE_REHEARSAL", "").lower() in {"1", "true", "yes"}


def env_files(values: Iterable[str] | None) -> list[str]:
    return [v for v in (values or []) if v]


def project_from_flags(
    env: str | None,
    rehearsal: bool | None,
    env_file: Iterable[str] | None,
    *,
    strict: bool = True,
) -> Project:
    """The project the common flags name (``--env``, ``--rehearsal``, ``--env-file``).

    ``strict=False`` for read-only views: remaining placeholders and weak prod secrets are
    warnings there instead of errors.
    """
    from ..project import open_project

    return open_project(
        default_env(env),
        rehearsal=rehearsal_mode(rehearsal),
        env_files=env_files(env_file),
        strict=strict,
    )


#: Annotations of the task parameters that take a whole number.
_NUMBER_ANNOTATIONS = frozenset({"int", "int | None", "None | int", "Optional[int]"})


def number_parameters(func: Callable[..., Any]) -> frozenset[str]:
    """The parameters of a task function annotated as whole numbers (``int``, ``int | None``)."""
    return frozenset(
        name
        for name, p in inspect.signature(func).parameters.items()
        if (
            p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        )
        in _NUMBER_ANNOTATIONS
        or p.annotation is int
    )


class LakehouseTask(Task):  # type: ignore[misc]
    """An invoke ``Task`` whose number flags reach the task as text, so that a non-number is
    one sentence with exit 2 (checked by :func:`lakehouse_task`) instead of the parser's
    ``ValueError`` traceback; ``--help`` still shows them as ``INT`` (lakehouse_tasks/cli.py)."""

    def __init__(self, body: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.number_args = number_parameters(body)
        super().__init__(body, *args, **kwargs)

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        if name in self.number_args:
            opts["kind"] = str
        return opts


def _numbers(func: Callable[..., Any], kw: dict[str, Any]) -> None:
    """Turn the number flags given as text into ``int``; a non-number is a ``ConfigError``."""
    from ..errors import ConfigError

    for name in number_parameters(func):
        value = kw.get(name)
        if isinstance(value, str):
            flag = "--" + name.rstrip("_").replace("_", "-")
            try:
                kw[name] = int(value.strip())
            except ValueError:
                raise ConfigError(
                    f"{flag} takes a whole number, not {value!r}; for example {flag} 5."
                ) from None


def lakehouse_task(*args: Any, **kwargs: Any) -> Any:
    """``invoke.task`` plus the error boundary: a ``LakehouseError`` becomes one line on stderr
    and its documented exit code; a bug keeps its traceback. Common flags get their help."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return lakehouse_task()(args[0])
    help_ = {**COMMON_HELP, **kwargs.pop("help", {})}
    kwargs.setdefault("iterable", [])
    # Long flags only: invoke's automatic one-letter flags collide between tasks (-h for
    # --rehearsal, -e for --env here and --echo there) and read badly in scripts.
    kwargs.setdefault("auto_shortflags", False)
    kwargs.setdefault("klass", LakehouseTask)
    if "env_file" not in kwargs["iterable"]:
        kwargs["iterable"] = [*kwargs["iterable"], "env_file"]

    def decorate(func: F) -> Any:
        @functools.wraps(func)
        def wrapper(c: Any, *a: Any, **kw: Any) -> Any:
            try:
                _numbers(func, kw)
                return func(c, *a, **kw)
            except LakehouseError as exc:
                # rich (through ui) loads only when there is something to print.
                from ..ui import Output

                Output(json_mode=bool(kw.get("json_"))).error(exc.message)
                raise Exit(code=exc.exit_code) from None
            except OSError as exc:
                # A read-only state directory is the user's to fix, not a bug: one sentence.
                from ..paths import state_dir_failure
                from ..ui import Output

                failure = state_dir_failure(exc)
                if failure is None:
                    raise
                Output(json_mode=bool(kw.get("json_"))).error(failure.message)
                raise Exit(code=failure.exit_code) from None
            except KeyboardInterrupt:
                from ..ui import Output

                Output().error("interrupted")
                raise Exit(code=130) from None

        params = inspect.signature(func).parameters
        kwargs["help"] = {k: v for k, v in help_.items() if k in params}
        if "env_file" not in params:
            kwargs["iterable"] = [i for i in kwargs["iterable"] if i != "env_file"]
        return invoke_task(*args, **kwargs)(wrapper)

    return decorate


def audited(name: str) -> Callable[[F], F]:
    """:func:`lakehouse_tasks.audit.audited`, loaded when the task runs rather than when the
    task module is imported (the audit module pulls in the environment schema and yaml, which
    `invoke --list` does not need). Same contract: on a plain function or an ``invoke.Task``."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from ..audit import audited as audited_now

            return audited_now(name)(func)(*args, **kwargs)

        wrapper.__audited__ = name  # type: ignore[attr-defined]
        return wrapper

    def decorate(func: F) -> F:
        if isinstance(func, Task):
            func.body = wrap(func.body)
            return func
        return wrap(func)  # type: ignore[return-value]

    return decorate
