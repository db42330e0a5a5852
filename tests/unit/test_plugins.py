"""The plugin facade: each hook's forwarding and checks, the failure policy and the switches."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit

from lakehouse_tasks import hookimpl
from lakehouse_tasks.checks import Check, Status, failed, passed
from lakehouse_tasks.errors import ExitCode, LakehouseError
from lakehouse_tasks.events import Event, EventKind
from lakehouse_tasks.hooks.manager import (
    FACADE_METHODS,
    LakehousePlugins,
    get_plugin_manager,
    set_plugin_manager,
)
from lakehouse_tasks.plugin import AccessURL, ExtraArtefact
from lakehouse_tasks.tasks.plugins import plugins as plugins_task
from lakehouse_tasks.testing import RecordingPlugin

PROJECT: Any = object()  # the facade only forwards the project; hooks here do not read it


def event(message: str = "deployed") -> Event:
    return Event(EventKind.DEPLOY_SUCCEEDED, "dev", message)


class Env:
    """The part of an Environment the hooks under test read."""

    name = "dev"

    def __init__(self, root: Path) -> None:
        self.root = root


class Boom:
    """A plugin whose every hook raises."""

    @hookimpl
    def lakehouse_event(self, event: Event) -> None:
        raise RuntimeError("smtp down")

    @hookimpl
    def lakehouse_preflight_checks(self, project: Any) -> list[Check]:
        raise ValueError("cannot reach the vault")

    @hookimpl
    def lakehouse_pre_deploy(self, project: Any, services: list[str]) -> str | None:
        raise KeyError("services")

    @hookimpl
    def lakehouse_post_deploy(self, project: Any, result: Any) -> None:
        raise RuntimeError("post deploy broke")

    @hookimpl
    def lakehouse_post_teardown(self, project: Any, result: Any) -> None:
        raise RuntimeError("post teardown broke")

    @hookimpl
    def lakehouse_health_snapshot(self, project: Any, snapshot: Any) -> None:
        raise RuntimeError("exporter broke")

    @hookimpl
    def lakehouse_post_backup(self, project: Any, manifest_path: Path) -> None:
        raise RuntimeError("offsite copy failed")

    @hookimpl
    def lakehouse_access_urls(self, env: Any) -> list[AccessURL]:
        raise RuntimeError("no urls")

    @hookimpl
    def lakehouse_compose_files(self, env: Any) -> list[str]:
        raise RuntimeError("no compose file")

    @hookimpl
    def lakehouse_backup_artefacts(self, project: Any, workdir: Path) -> list[ExtraArtefact]:
        raise RuntimeError("export failed")


# ---- observer hooks: a failure is reported and the run continues ---------------------------
def test_emit_reaches_every_plugin(lakehouse_plugins: Any) -> None:
    first, second = RecordingPlugin(), RecordingPlugin()
    plugins = lakehouse_plugins(("first", first), ("second", second))
    plugins.emit(event())
    assert [e.message for e in first.events] == ["deployed"]
    assert [e.message for e in second.events] == ["deployed"]


@pytest.mark.parametrize("registered_first", [True, False])
def test_observer_exception_is_reported_and_others_still_called(
    lakehouse_plugins: Any, capsys: pytest.CaptureFixture[str], registered_first: bool
) -> None:
    recorder = RecordingPlugin()
    order = [("boom", Boom()), ("recorder", recorder)]
    plugins = lakehouse_plugins(*(order if registered_first else reversed(order)))
    plugins.emit(event())
    plugins.post_deploy(project=PROJECT, result={"outcome": "ok"})
    plugins.post_teardown(project=PROJECT, result={"removed": 3})
    plugins.health_snapshot(project=PROJECT, snapshot={"minio": "healthy"})
    plugins.post_backup(project=PROJECT, manifest_path=Path("/backups/x/manifest.json"))
    err = capsys.readouterr().err
    for hook in (
        "lakehouse_event",
        "lakehouse_post_deploy",
        "lakehouse_post_teardown",
        "lakehouse_health_snapshot",
        "lakehouse_post_backup",
    ):
        assert f"plugin 'boom' failed in {hook}" in err
        assert len(recorder.called(hook)) == 1
    assert "RuntimeError: smtp down" in err
    assert "Traceback" not in err
    assert recorder.called("post_deploy")[0].kwargs["result"] == {"outcome": "ok"}
    assert recorder.called("post_teardown")[0].kwargs["result"] == {"removed": 3}
    assert recorder.called("health_snapshot")[0].kwargs["snapshot"] == {"minio": "healthy"}
    assert recorder.called("post_backup")[0].kwargs["manifest_path"] == Path(
        "/backups/x/manifest.json"
    )


def test_access_urls_collects_and_survives_a_broken_plugin(
    lakehouse_plugins: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Grafana:
        @hookimpl
        def lakehouse_access_urls(self, env: Any) -> list[AccessURL]:
            return [AccessURL("Grafana", "http://localhost:3000/", f"{env.name} dashboards")]

    plugins = lakehouse_plugins(("grafana", Grafana()), ("boom", Boom()))
    urls = plugins.access_urls(env=Env(tmp_path))
    assert urls == [AccessURL("Grafana", "http://localhost:3000/", "dev dashboards")]
    assert "plugin 'boom' failed in lakehouse_access_urls" in capsys.readouterr().err


# ---- gating hooks: a failure stops the task with a clean error ------------------------------
def test_preflight_checks_carry_the_plugin_name_as_source(lakehouse_plugins: Any) -> None:
    class Vault:
        @hookimpl
        def lakehouse_preflight_checks(self, project: Any) -> list[Check]:
            return [passed("vault reachable"), failed("vault sealed", "sealed", "unseal it")]

    plugins = lakehouse_plugins(("vault", Vault()))
    checks = plugins.preflight_checks(project=PROJECT)
    assert [(c.name, c.status, c.source) for c in checks] == [
        ("vault reachable", Status.PASS, "vault"),
        ("vault sealed", Status.FAIL, "vault"),
    ]


def test_preflight_exception_stops_with_an_error_naming_the_plugin(lakehouse_plugins: Any) -> None:
    plugins = lakehouse_plugins(("boom", Boom()))
    with pytest.raises(LakehouseError) as info:
        plugins.preflight_checks(project=PROJECT)
    assert info.value.exit_code == ExitCode.PREFLIGHT_FAILED
    assert "'boom'" in info.value.message
    assert "ValueError: cannot reach the vault" in info.value.message
    assert "LAKEHOUSE_DISABLE_PLUGINS=boom" in info.value.message


def test_preflight_rejects_a_result_that_is_not_a_list_of_checks(lakehouse_plugins: Any) -> None:
    class Sloppy:
        @hookimpl
        def lakehouse_preflight_checks(self, project: Any) -> str:
            return "all good"

    plugins = lakehouse_plugins(("sloppy", Sloppy()))
    with pytest.raises(LakehouseError, match="'sloppy' returned str"):
        plugins.preflight_checks(project=PROJECT)


def test_pre_deploy_veto_names_the_plugin_and_stops_at_first_result(
    lakehouse_plugins: Any,
) -> None:
    class Freeze:
        @hookimpl
        def lakehouse_pre_deploy(self, project: Any, services: list[str]) -> str | None:
            return "change freeze until Monday" if "trino" in services else None

    recorder = RecordingPlugin()
    # Registered last, so called first: the recorder sees the call, then the freeze vetoes it.
    plugins = lakehouse_plugins(("freeze", Freeze()), ("recorder", recorder))
    plugins.pre_deploy(project=PROJECT, services=["minio"])  # allowed: returns None
    with pytest.raises(LakehouseError) as info:
        plugins.pre_deploy(project=PROJECT, services=["minio", "trino"])
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
    assert info.value.message == "Deploy vetoed by plugin 'freeze': change freeze until Monday."
    assert [c.kwargs["services"] for c in recorder.called("pre_deploy")] == [
        ["minio"],
        ["minio", "trino"],
    ]


def test_pre_deploy_stops_at_the_first_veto(lakehouse_plugins: Any) -> None:
    class Veto:
        @hookimpl
        def lakehouse_pre_deploy(self) -> str:
            return "no"

    recorder = RecordingPlugin()
    plugins = lakehouse_plugins(("recorder", recorder), ("veto", Veto()))
    with pytest.raises(LakehouseError, match="'veto'"):
        plugins.pre_deploy(project=PROJECT, services=[])
    assert recorder.called("pre_deploy") == []  # called after the veto: never reached


def test_pre_deploy_exception_is_a_clean_deploy_error(lakehouse_plugins: Any) -> None:
    plugins = lakehouse_plugins(("boom", Boom()))
    with pytest.raises(LakehouseError) as info:
        plugins.pre_deploy(project=PROJECT, services=["minio"])
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
    assert "Plugin 'boom' failed in lakehouse_pre_deploy: KeyError" in info.value.message


def test_a_lakehouse_error_in_a_gating_hook_keeps_its_message_and_code(
    lakehouse_plugins: Any,
) -> None:
    class Lock:
        @hookimpl
        def lakehouse_pre_deploy(self) -> None:
            raise LakehouseError("the change lock is held by alice", ExitCode.REFUSED)

    with pytest.raises(LakehouseError) as info:
        lakehouse_plugins(("lock", Lock())).pre_deploy(project=PROJECT, services=[])
    assert info.value.exit_code == ExitCode.REFUSED
    assert info.value.message == "Plugin 'lock' stopped the task: the change lock is held by alice"


# ---- contributing hooks whose result must be exact ------------------------------------------
def test_compose_files_are_resolved_and_must_exist(lakehouse_plugins: Any, tmp_path: Path) -> None:
    (tmp_path / "compose").mkdir()
    monitoring = tmp_path / "compose" / "monitoring.yaml"
    monitoring.write_text("services: {}\n")

    class Monitoring:
        @hookimpl
        def lakehouse_compose_files(self, env: Any) -> list[str]:
            return ["compose/monitoring.yaml"]

    class Missing:
        @hookimpl
        def lakehouse_compose_files(self, env: Any) -> list[Path]:
            return [env.root / "nowhere.yaml"]

    assert lakehouse_plugins(("monitoring", Monitoring())).compose_files(env=Env(tmp_path)) == [
        monitoring
    ]
    with pytest.raises(LakehouseError, match=r"'missing' added compose file .*nowhere.yaml"):
        lakehouse_plugins(("missing", Missing())).compose_files(env=Env(tmp_path))
    with pytest.raises(LakehouseError, match="'boom' failed in lakehouse_compose_files"):
        lakehouse_plugins(("boom", Boom())).compose_files(env=Env(tmp_path))


def test_backup_artefacts_must_be_files_inside_the_workdir(
    lakehouse_plugins: Any, tmp_path: Path
) -> None:
    workdir = tmp_path / "backup"
    workdir.mkdir()

    class Dashboards:
        @hookimpl
        def lakehouse_backup_artefacts(self, workdir: Path) -> list[ExtraArtefact]:
            (workdir / "dashboards.json").write_text("{}")
            return [ExtraArtefact("dashboards", Path("dashboards.json"), "grafana-dashboards")]

    class Outside:
        @hookimpl
        def lakehouse_backup_artefacts(self, workdir: Path) -> list[ExtraArtefact]:
            return [ExtraArtefact("passwd", Path("/etc/passwd"), "oops")]

    artefacts = lakehouse_plugins(("dashboards", Dashboards())).backup_artefacts(
        project=PROJECT, workdir=workdir
    )
    assert artefacts == [
        ExtraArtefact("dashboards", (workdir / "dashboards.json").resolve(), "grafana-dashboards")
    ]
    with pytest.raises(LakehouseError) as info:
        lakehouse_plugins(("outside", Outside())).backup_artefacts(project=PROJECT, workdir=workdir)
    assert info.value.exit_code == ExitCode.INTEGRITY_FAILED
    assert "'outside'" in info.value.message and "not a file inside" in info.value.message
    with pytest.raises(LakehouseError, match="'boom' failed in lakehouse_backup_artefacts"):
        lakehouse_plugins(("boom", Boom())).backup_artefacts(project=PROJECT, workdir=workdir)


# ---- loading: import failures, strict mode, registration checks -----------------------------
def missing_module_entry_point(name: str = "ghost") -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(
        name=name, value="lakehouse_no_such_plugin_module:plugin", group="lakehouse_tasks"
    )


def test_import_failure_is_reported_by_name_and_skipped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plugins = LakehousePlugins(builtins=True, entry_points=False, strict=False, disabled=())
    plugins.load_entry_points([missing_module_entry_point("ghost")])
    err = capsys.readouterr().err
    assert "plugin 'ghost' cannot be imported (ModuleNotFoundError" in err
    assert "was skipped" in err
    infos = {info.name: info for info in plugins.describe()}
    assert infos["ghost"].status == "failed"
    assert infos["lakehouse.event_log"].status == "active"  # the others are unaffected
    plugins.emit(event())  # and the run goes on


def test_strict_mode_makes_an_import_failure_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_STRICT_PLUGINS", "1")
    plugins = LakehousePlugins(builtins=False, entry_points=False)
    with pytest.raises(LakehouseError) as info:
        plugins.load_entry_points([missing_module_entry_point("ghost")])
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert "'ghost' cannot be imported" in info.value.message


def test_a_plugin_implementing_an_unknown_hook_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Typo:
        @hookimpl
        def lakehouse_evnet(self, event: Event) -> None:
            pass

    plugins = LakehousePlugins(builtins=False, entry_points=False, strict=False)
    with pytest.raises(LakehouseError, match="'typo' implements unknown hook 'lakehouse_evnet'"):
        plugins.register(Typo(), name="typo")
    assert plugins.plugin("typo") is None


def test_an_optional_hook_from_a_newer_lakehouse_ops_is_accepted() -> None:
    class Newer:
        @hookimpl(optionalhook=True)
        def lakehouse_future_hook(self) -> None:
            pass

    plugins = LakehousePlugins(builtins=False, entry_points=False)
    plugins.register(Newer(), name="newer")
    assert plugins.names == ["newer"]


def test_a_wrapper_implementation_is_refused() -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def lakehouse_event(self, event: Event) -> Any:
            return (yield)

    plugins = LakehousePlugins(builtins=False, entry_points=False)
    with pytest.raises(LakehouseError, match="as a wrapper"):
        plugins.register(Wrapper(), name="wrapper")


# ---- switches ---------------------------------------------------------------------------------
def test_disable_switch_blocks_plugins_by_name_builtins_included(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAKEHOUSE_DISABLE_PLUGINS", "lakehouse.event_log, ghost")
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path))
    plugins = LakehousePlugins(entry_points=False)
    plugins.load_entry_points([missing_module_entry_point("ghost")])  # blocked: not imported
    plugins.emit(event())
    assert not (tmp_path / "events.jsonl").exists()
    statuses = {info.name: info.status for info in plugins.describe()}
    assert statuses == {
        "lakehouse.access_urls": "active",
        "lakehouse.event_log": "disabled",
        "ghost": "disabled",
    }
    recorder = RecordingPlugin()
    plugins.register(recorder, name="ghost")  # a blocked name stays blocked
    plugins.emit(event())
    assert recorder.events == []


def test_trace_switch_prints_every_hook_call_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAKEHOUSE_TRACE_HOOKS", "1")
    plugins = LakehousePlugins(builtins=False, entry_points=False)
    plugins.register(RecordingPlugin(), name="recorder")
    plugins.emit(event("traced"))
    plugins.pre_deploy(project=PROJECT, services=["minio"])
    captured = capsys.readouterr()
    assert "lakehouse_event" in captured.err and "traced" in captured.err
    assert "lakehouse_pre_deploy" in captured.err and "finish" in captured.err
    assert "lakehouse_event: calling plugin 'recorder'" in captured.err
    assert captured.out == ""


def test_no_tracing_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    plugins = LakehousePlugins(builtins=False, entry_points=False, trace=False)
    plugins.register(RecordingPlugin(), name="recorder")
    plugins.emit(event())
    assert capsys.readouterr().err == ""


# ---- the cached manager and the fixture -----------------------------------------------------
def test_get_plugin_manager_is_cached_per_process_and_reloadable() -> None:
    set_plugin_manager(None)
    try:
        first = get_plugin_manager()
        assert get_plugin_manager() is first
        assert get_plugin_manager(reload=True) is not first
        assert "lakehouse.access_urls" in get_plugin_manager().names
    finally:
        set_plugin_manager(None)


def test_fixture_installs_its_manager_as_the_process_manager(lakehouse_plugins: Any) -> None:
    recorder = RecordingPlugin()
    plugins = lakehouse_plugins(recorder)
    assert get_plugin_manager() is plugins
    get_plugin_manager().emit(event())
    assert len(recorder.events) == 1
    assert [i.source for i in plugins.describe()] == ["local"]
    assert plugins.names == ["RecordingPlugin"]


# ---- invoke plugins -------------------------------------------------------------------------
def test_invoke_plugins_lists_name_version_source_and_hooks(
    lakehouse_plugins: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    lakehouse_plugins(("recorder", RecordingPlugin()), builtins=True)
    plugins_task(Context(), json_=True)
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["lakehouse.access_urls"]["source"] == "built-in"
    assert rows["lakehouse.access_urls"]["hooks"] == ["lakehouse_access_urls"]
    assert rows["lakehouse.event_log"]["hooks"] == ["lakehouse_event"]
    assert rows["recorder"]["source"] == "local"
    assert len(rows["recorder"]["hooks"]) == len(FACADE_METHODS)

    plugins_task(Context())
    table = capsys.readouterr().out
    assert "lakehouse.access_urls" in table and "built-in" in table and "access_urls" in table


def test_invoke_plugins_exits_2_in_strict_mode_with_a_broken_plugin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAKEHOUSE_STRICT_PLUGINS", "1")
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group=None: [missing_module_entry_point("ghost")],
    )
    set_plugin_manager(None)
    try:
        with pytest.raises(Exit) as info:
            plugins_task(Context())
    finally:
        set_plugin_manager(None)
    assert info.value.code == 2
    assert "Plugin 'ghost' cannot be imported" in capsys.readouterr().err
