"""The debootstrapped roots of both rehearsal tiers are built by one function: a cached root
is used as it is, and the older roots of the same name are the ones it replaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse_tasks.rehearsal_images import StandinBuildError, build_root_tarball


def test_a_cached_root_is_used_without_debootstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = tmp_path / "lakehouse-ops" / "rehearsal" / "debian-root-abc.tar"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tar")
    said: list[str] = []
    got = build_root_tarball(
        "debian-root", "abc", tmp_path / "none.txt", "true", said.append, label="debian root"
    )
    assert got == cached
    assert said == ["debian root: cached debian-root-abc.tar"]


def test_a_root_not_cached_needs_root_or_debootstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no debootstrap on it
    with pytest.raises(StandinBuildError, match="debootstrap"):
        build_root_tarball(
            "postgres-root", "new", tmp_path / "none.txt", "true", print, label="postgres root"
        )
    assert not list((tmp_path / "lakehouse-ops" / "rehearsal").glob("*.tar"))
