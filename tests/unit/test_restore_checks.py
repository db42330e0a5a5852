"""What a restore checks before it asks or changes anything: the checksums are computed while
the free space is measured, and a corrupted backup is the error reported when both fail."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse_tasks.data import restorable as data_restorable
from lakehouse_tasks.errors import ExitCode, LakehouseError, RefusedError


def _info(environment: str = "dev") -> Any:
    return SimpleNamespace(
        id="dev-1", environment=environment, manifest=SimpleNamespace(artefacts=[])
    )


def _project() -> Any:
    return SimpleNamespace(env=SimpleNamespace(name="dev"))


def test_checksums_run_while_the_space_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    measuring = threading.Event()

    def checksums(_info: Any, _out: Any) -> None:
        # only returns if the space check is running at the same time
        assert measuring.wait(timeout=5), "the checksums waited for the space check"

    def space(_project: Any, _info: Any, _arts: Any, _backend: Any) -> None:
        measuring.set()

    monkeypatch.setattr(data_restorable, "check_checksums", checksums)
    monkeypatch.setattr(data_restorable, "_check_restore_space", space)
    data_restorable.check_restorable(_project(), _info())


def test_a_corrupted_backup_is_reported_before_a_lack_of_space(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def checksums(_info: Any, _out: Any) -> None:
        raise LakehouseError("Backup dev-1 is corrupted", ExitCode.INTEGRITY_FAILED)

    def space(_project: Any, _info: Any, _arts: Any, _backend: Any) -> None:
        raise RefusedError("not enough free space")

    monkeypatch.setattr(data_restorable, "check_checksums", checksums)
    monkeypatch.setattr(data_restorable, "_check_restore_space", space)
    with pytest.raises(LakehouseError) as err:
        data_restorable.check_restorable(_project(), _info())
    assert err.value.exit_code == ExitCode.INTEGRITY_FAILED


def test_another_environment_is_refused_after_the_checks_pass() -> None:
    # no artefacts selected: the checksums and the space check pass without a file or engine
    with pytest.raises(RefusedError, match="--allow-other-env"):
        data_restorable.check_restorable(_project(), _info("prod"))
    data_restorable.check_restorable(_project(), _info("prod"), allow_other_env=True)
