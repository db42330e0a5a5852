"""lakehouse-offsite without an engine: settings, secrets kept out of argv and output, restic's
errors as one sentence (real restic on a local repository where it is installed)."""

from __future__ import annotations

import json
import shutil
import stat
import types
from pathlib import Path

import pytest
from lakehouse_offsite import plugin as offsite
from lakehouse_offsite.restic import Restic, config_from_env, display_location

from lakehouse_tasks.errors import LakehouseError

PASSWORD = "a-long-repository-password-1234"


def env_with(root: Path, **values: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        name="prod",
        root=root,
        project_name="lht-offsite-unit",
        get=lambda k, d=None: values.get(k, d),
    )


def setup_files(root: Path) -> None:
    (root / "env").mkdir(exist_ok=True)
    (root / "env" / "pw").write_text(PASSWORD + "\n")
    (root / "env" / "creds").write_text(
        "# S3\nexport AWS_ACCESS_KEY_ID=AKIAEXAMPLEKEY\nAWS_SECRET_ACCESS_KEY='s3cr3t-value-xyz'\n"
    )


def test_without_a_repository_the_plugin_is_off(tmp_path: Path) -> None:
    assert config_from_env(env_with(tmp_path), tmp_path) is None
    assert offsite.lakehouse_status_checks(env_with(tmp_path)) == []


def test_missing_password_file_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(LakehouseError, match=r"OFFSITE_PASSWORD_FILE .* does not exist") as err:
        config_from_env(
            env_with(tmp_path, OFFSITE_REPOSITORY="/srv/r", OFFSITE_PASSWORD_FILE="env/none"),
            tmp_path,
        )
    assert err.value.exit_code == 2


def test_secrets_go_to_restics_environment_never_its_argv(tmp_path: Path) -> None:
    setup_files(tmp_path)
    fake = tmp_path / "fake-restic"
    record = tmp_path / "record.json"
    fake.write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv, 'env': dict(os.environ)}}, open({str(record)!r}, 'w'))\n"
        "sys.stderr.write('Fatal: something with s3cr3t-value-xyz in it\\n'); sys.exit(1)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = env_with(
        tmp_path,
        OFFSITE_REPOSITORY="s3:http://user:pw@127.0.0.1:1/bucket",
        OFFSITE_PASSWORD_FILE="env/pw",
        OFFSITE_CREDENTIALS_FILE="env/creds",
        OFFSITE_RESTIC=str(fake),
    )
    config = config_from_env(env, tmp_path / "state")
    assert config is not None and "s3cr3t" not in repr(config)
    restic = Restic(config)
    restic._probed = True  # no server: only the command line and environment are looked at
    with pytest.raises(LakehouseError) as err:
        restic.run(["snapshots"])
    seen = json.loads(record.read_text())
    argv = " ".join(seen["argv"])
    assert PASSWORD not in argv and "s3cr3t-value-xyz" not in argv and "user:pw" not in argv
    assert seen["env"]["AWS_SECRET_ACCESS_KEY"] == "s3cr3t-value-xyz"
    assert seen["env"]["RESTIC_PASSWORD_FILE"] == str(tmp_path / "env" / "pw")
    assert "RESTIC_PASSWORD" not in seen["env"]
    assert "s3cr3t-value-xyz" not in err.value.message and "***" in err.value.message
    assert "user:pw" not in err.value.message
    assert display_location("s3:http://user:pw@host/b") == "s3:http://host/b"


def test_an_unreachable_s3_server_is_refused_at_once(tmp_path: Path) -> None:
    setup_files(tmp_path)
    env = env_with(
        tmp_path, OFFSITE_REPOSITORY="s3:http://127.0.0.1:9/b", OFFSITE_PASSWORD_FILE="env/pw"
    )
    with pytest.raises(LakehouseError, match="cannot be reached") as err:
        Restic(config_from_env(env, tmp_path)).open()  # type: ignore[arg-type]
    assert err.value.exit_code == 4


@pytest.mark.skipif(not shutil.which("restic"), reason="restic is not installed")
def test_real_restic_wrong_password_and_foreign_directory(tmp_path: Path) -> None:
    setup_files(tmp_path)
    repo = tmp_path / "repo"
    good = env_with(
        tmp_path, OFFSITE_REPOSITORY=str(repo), OFFSITE_PASSWORD_FILE="env/pw", OFFSITE_INIT="true"
    )
    Restic(config_from_env(good, tmp_path / "s")).open()  # type: ignore[arg-type]
    assert (repo / "config").is_file()
    (tmp_path / "env" / "wrong").write_text("wrong-password-here\n")
    wrong = env_with(tmp_path, OFFSITE_REPOSITORY=str(repo), OFFSITE_PASSWORD_FILE="env/wrong")
    with pytest.raises(LakehouseError, match="does not open the off-site repository") as err:
        Restic(config_from_env(wrong, tmp_path / "s")).open()  # type: ignore[arg-type]
    assert err.value.exit_code == 2 and "wrong-password-here" not in err.value.message
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    other = env_with(tmp_path, OFFSITE_REPOSITORY=str(foreign), OFFSITE_PASSWORD_FILE="env/pw")
    with pytest.raises(LakehouseError, match="holds no restic repository") as err:
        Restic(config_from_env(other, tmp_path / "s")).open()  # type: ignore[arg-type]
    assert err.value.exit_code == 2
    assert sorted(p.name for p in foreign.iterdir()) == ["x.txt"]


def test_health_line_warns_when_the_newest_copy_is_overdue(tmp_path: Path, monkeypatch) -> None:
    setup_files(tmp_path)
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    env = env_with(
        tmp_path, OFFSITE_REPOSITORY=str(tmp_path / "r"), OFFSITE_PASSWORD_FILE="env/pw",
        OFFSITE_MAX_AGE_HOURS="2",
    )  # fmt: skip
    emitted = []
    monkeypatch.setattr(offsite, "_emit", lambda event, env: emitted.append(event))
    [check] = offsite.lakehouse_status_checks(env)
    assert check.status.value == "warn" and "no backup of prod has been copied" in check.detail
    import datetime as dt

    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)).isoformat()
    offsite._save_record(env, {"last_success": old, "last": {"backup": "prod-x"}})
    [check] = offsite.lakehouse_status_checks(env)
    assert check.status.value == "warn" and "overdue" in check.detail and "prod-x" in check.detail
    assert [e.kind.value for e in emitted] == ["backup.offsite_missed", "backup.offsite_missed"]
    fresh = dt.datetime.now(dt.UTC).isoformat()
    offsite._save_record(env, {"last_success": fresh, "last": {"backup": "prod-y"}})
    [check] = offsite.lakehouse_status_checks(env)
    assert check.status.value == "pass" and "prod-y" in check.detail
