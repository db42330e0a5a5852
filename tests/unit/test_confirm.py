"""Confirmation rules shared by teardown and restore."""

from __future__ import annotations

import pytest

from lakehouse_tasks.confirm import confirm_destructive
from lakehouse_tasks.errors import RefusedError


def answers(*replies: str):  # type: ignore[no-untyped-def]
    asked: list[str] = []
    it = iter(replies)

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(it)

    ask.asked = asked  # type: ignore[attr-defined]
    return ask


def test_yes_confirms_without_asking_even_without_tty() -> None:
    ask = answers()
    confirm_destructive("remove volumes", "prod", yes=True, is_tty=False, ask=ask)
    assert ask.asked == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_no_tty_without_yes_is_refused_with_exit_7_naming_the_flag(env: str) -> None:
    with pytest.raises(RefusedError) as raised:
        confirm_destructive("remove every volume", env, is_tty=False, ask=answers())
    assert raised.value.exit_code == 7
    assert "--yes" in raised.value.message


def test_dev_asks_y_n() -> None:
    confirm_destructive("remove volumes", "dev", is_tty=True, ask=answers("y"))
    with pytest.raises(RefusedError):
        confirm_destructive("remove volumes", "dev", is_tty=True, ask=answers(""))
    with pytest.raises(RefusedError):
        confirm_destructive("remove volumes", "dev", is_tty=True, ask=answers("prod"))


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_need_the_name_typed(env: str) -> None:
    ask = answers(env)
    confirm_destructive("remove volumes", env, is_tty=True, ask=ask)
    assert env in ask.asked[0]  # type: ignore[attr-defined]
    with pytest.raises(RefusedError) as raised:
        confirm_destructive("remove volumes", env, is_tty=True, ask=answers("y"))
    assert raised.value.exit_code == 7
