"""User-facing errors.

Every error a user can cause (a bad config, a missing plugin, a corrupt checkpoint, a
dataset that is not what the config says) is a `VLAError`: its message is one short
paragraph that names what was wrong and how to fix it. The CLI prints it without a
traceback and exits with code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations


class VLAError(Exception):
    """Base class of errors whose message is meant for the user, not a developer."""


class ConfigError(VLAError):
    """A config value is wrong; `path` is its dotted location (e.g. `model.vla_head.num_steps`)."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class ComponentNotFoundError(VLAError):
    """No installed plugin provides a component of that kind and name."""


class DuplicateComponentError(VLAError):
    """Two installed distributions register the same component name."""


class PluginImportError(VLAError):
    """An installed plugin's entry point failed to import."""


class CheckpointError(VLAError):
    """A checkpoint is missing, corrupt, or does not match the model."""


class DataError(VLAError):
    """A dataset is missing, malformed, or does not match the config."""


class EnvError(VLAError):
    """A simulator env cannot run: an unknown task, missing system libraries, a policy that does not fit it."""
