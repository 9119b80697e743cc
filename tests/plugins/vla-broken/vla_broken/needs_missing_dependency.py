"""A module whose third-party dependency is not installed."""

import vla_dependency_that_is_not_installed  # noqa: F401

NeedsMissingDependencyHead = None
