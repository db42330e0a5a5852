"""The README's first two commands and CI (.ci/run), which runs them literally: read out of
README.md by scripts/readme-commands, so that the two cannot drift."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def readme_command(which: str, root: Path = REPO) -> str:
    proc = subprocess.run(
        [str(root / "scripts" / "readme-commands"), which], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_readme_starts_with_the_offline_main_job_and_the_test_suite() -> None:
    readme = (REPO / "README.md").read_text()
    main = readme_command("main")
    assert main == "scripts/setup && .venv/bin/invoke deploy --env dev --rehearsal"
    assert readme_command("test") == "scripts/test"
    # Right beside it, the same job with the real images for a machine with registries.
    head = readme[: readme.index("## Everyday use")]
    real = "scripts/setup && .venv/bin/invoke deploy --env dev  "
    assert real in head and head.index(main) < head.index(real)


def test_ci_runs_the_readme_commands_as_written() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/readme-commands main" in ci and "scripts/readme-commands test" in ci
    assert 'bash -c "$main_command"' in ci and 'bash -c "$test_command"' in ci
    assert "teardown" in ci and "--remove-volumes --yes" in ci


def ci_copy(tmp_path: Path, main: str, test: str) -> Path:
    """A checkout holding only CI's entry point, its reader and a README with two commands."""
    root = tmp_path / "checkout"
    (root / ".ci").mkdir(parents=True)
    (root / "scripts").mkdir()
    shutil.copy2(REPO / ".ci" / "run", root / ".ci" / "run")
    shutil.copy2(REPO / "scripts" / "readme-commands", root / "scripts" / "readme-commands")
    (root / "README.md").write_text(
        f"# x\n\n```bash\n{main}   # the main job\n{test}   # the tests\n```\n"
    )
    return root


def run_ci(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / ".ci" / "run")], cwd=root, capture_output=True, text=True, timeout=60
    )


def test_ci_passes_and_ends_with_the_test_commands_summary(tmp_path: Path) -> None:
    root = ci_copy(tmp_path, "touch main-ran", "echo '=== 3 passed in 0.12s ==='")
    proc = run_ci(root)
    assert proc.returncode == 0, proc.stderr
    assert (root / "main-ran").exists()
    assert proc.stdout.splitlines()[-1] == "=== 3 passed in 0.12s ==="


def test_a_failing_first_command_fails_ci_before_the_tests(tmp_path: Path) -> None:
    root = ci_copy(tmp_path, "false", "touch tests-ran")
    proc = run_ci(root)
    assert proc.returncode == 1
    assert "first command failed" in proc.stderr
    assert not (root / "tests-ran").exists()


@pytest.mark.parametrize(("code", "expected"), [(1, 1), (5, 1), (0, 0)])
def test_the_test_commands_failure_fails_ci_and_no_tests_is_a_failure(
    tmp_path: Path, code: int, expected: int
) -> None:
    root = ci_copy(tmp_path, "true", f"echo '=== summary ==='; exit {code}")
    proc = run_ci(root)
    assert proc.returncode == expected
    assert proc.stdout.splitlines()[-1] == "=== summary ==="
