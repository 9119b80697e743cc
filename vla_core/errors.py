"""User-facing errors.

Every error a user can cause or meet (a bad config, a missing plugin, a corrupt
checkpoint, a dataset that is not what the config says, a full disk, a missing GPU) is a
`VLAError`: its message is one short paragraph that names the file or flag, what was
wrong and how to fix it. The CLI prints it without a traceback (`--debug` or
`VLA_DEBUG=1` shows it) and exits with the error's `exit_code`: 2 for bad input, 1 for
an environment that cannot do what was asked (`ResourceError`).
"""

from __future__ import annotations


class VLAError(Exception):
    """Base class of errors whose message is meant for the user, not a developer."""

    #: Exit status of the CLI: 2 = the input (config, flag, file) is wrong.
    exit_code: int = 2


class ResourceError(VLAError):
    """The input is fine but the machine cannot do it: disk full, permission denied, no GPU,
    a port already in use. Retrying elsewhere (or after freeing the resource) can work."""

    exit_code = 1


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


class CheckpointWriteError(CheckpointError, ResourceError):
    """Writing a checkpoint failed (disk full, permission denied); nothing earlier was changed."""


class DataError(VLAError):
    """A dataset is missing, malformed, or does not match the config."""


class EnvError(VLAError):
    """A simulator env cannot run: an unknown task, missing system libraries, a policy that does not fit it."""
