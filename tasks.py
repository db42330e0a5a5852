"""Entry point for ``invoke``: the task suite lives in the lakehouse_tasks package."""

from lakehouse_tasks.tasks import ns

namespace = ns
