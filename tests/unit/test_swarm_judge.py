"""How a deploy step judges one swarm service from its tasks (no engine: views built by hand)."""

from __future__ import annotations

from lakehouse_tasks.backends.swarm.steps import _Watch, judge_service
from lakehouse_tasks.backends.swarm.views import ServiceView, TaskView


def task(state: str, desired: str = "running", *, current: bool = True, n: int = 1) -> TaskView:
    return TaskView(
        id=f"t{n}", service="metastore-db", slot=1, state=state, desired=desired, error="",
        exit_code=0 if state == "complete" else None, container_id="c", image="img",
        timestamp="", created=f"2026-12-02T00:00:0{n}Z", current_spec=current,
    )  # fmt: skip


def view(*tasks: TaskView, restart: str = "none", update: str = "") -> ServiceView:
    return ServiceView(
        name="metastore-db", full_name="s_metastore-db", id="x", replicas=1, oneshot=False,
        has_healthcheck=True, restart_condition=restart, update_state=update, update_message="",
        update_started="", cpu_limit=0, memory_limit=0, mounts=(), tasks=tasks,
    )  # fmt: skip


def test_a_long_running_task_that_ended_under_restart_none_fails_at_once_with_the_fix() -> None:
    status, done, failure = judge_service(view(task("complete", "shutdown")), _Watch(before={}))
    assert (status, done) == ("exited (0)", True)
    assert "HEALTHCHECK_START_PERIOD" in failure and "RESTART_POLICY" in failure


def test_an_ended_task_that_swarm_will_replace_is_still_starting() -> None:
    status, done, failure = judge_service(
        view(task("complete", "shutdown"), restart="any"), _Watch(before={})
    )
    assert (done, failure) == (False, "") and status.startswith("starting")


def test_a_replacement_already_scheduled_speaks_for_the_slot() -> None:
    status, done, _ = judge_service(
        view(task("complete", "shutdown", n=1), task("running", n=2)), _Watch(before={})
    )
    assert (status, done) == ("healthy", True)
