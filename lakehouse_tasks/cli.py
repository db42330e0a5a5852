"""The ``lakehouse`` console script: the same tasks as ``invoke``, without a tasks.py."""

from __future__ import annotations

from invoke import Program

from . import __version__
from .tasks import ns

program = Program(namespace=ns, version=__version__, name="lakehouse", binary="lakehouse")


def main() -> None:
    program.run()
