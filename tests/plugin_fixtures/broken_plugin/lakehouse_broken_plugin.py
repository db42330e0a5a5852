"""A plugin whose import fails, as one with a missing dependency does."""

import lakehouse_tasks_dependency_that_is_not_installed  # noqa: F401
