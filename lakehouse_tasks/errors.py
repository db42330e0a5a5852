"""The project's one user-facing error type and its documented exit codes.

A ``LakehouseError`` is something the *user* can fix (bad input, a busy port, a refused
confirmation): the CLI prints its message as one sentence, without a traceback, and exits
with its code. A bug is any other exception and keeps its traceback.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes of every task, documented in docs/EXIT_CODES.md."""

    OK = 0
    DEGRADED = 1  # health: some service is unhealthy, missing or exited unexpectedly
    BAD_INPUT = 2  # bad input or configuration: unknown environment, invalid variable, ...
    PREFLIGHT_FAILED = 3  # a preflight or security check failed
    DEPLOY_FAILED = 4  # deploy/rollback did not reach a healthy stack, or the lock is held
    ENGINE_UNREACHABLE = 5  # the Docker engine or compose v2 cannot be used
    INTEGRITY_FAILED = 6  # backup/restore integrity: checksum mismatch, corrupted artefact
    REFUSED = 7  # a destructive action was refused (no confirmation, no TTY, no fresh backup)
    SMOKE_FAILED = 8  # smoke: a data-path hop failed, or its clean-up left something behind
    INTERRUPTED = 130  # Ctrl-C during a task that cannot finish cleanly


class LakehouseError(Exception):
    """A failure the user can fix; ``message`` names the problem and the fix."""

    def __init__(self, message: str, exit_code: ExitCode | int = ExitCode.BAD_INPUT) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = int(exit_code)

    def __str__(self) -> str:
        return self.message


class ConfigError(LakehouseError):
    """The environment or compose configuration is invalid (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.BAD_INPUT)


class EngineError(LakehouseError):
    """A docker or compose command failed; carries the command's stderr."""

    def __init__(
        self,
        message: str,
        exit_code: ExitCode | int = ExitCode.ENGINE_UNREACHABLE,
        *,
        command: list[str] | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message, exit_code)
        self.command = command or []
        self.stderr = stderr


class RefusedError(LakehouseError):
    """A destructive action was refused for safety (exit 7)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.REFUSED)


class StateDirError(ConfigError):
    """The tool's state directory (``LAKEHOUSE_STATE_DIR``, else ``.lakehouse/`` of the
    project) cannot be created or written (exit 2). Not a plugin's fault even when a plugin
    hit it: the plugin manager passes it through unchanged."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(
            f"The state directory {path} cannot be written ({reason}); make it writable or "
            "point LAKEHOUSE_STATE_DIR at a writable directory."
        )
