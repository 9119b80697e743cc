"""vla-core: contracts, registry, configs, training engine and CLI for VLA robot policies.

The public API reads naturally and imports lazily: `import vla_core` does not import
torch; building a model does.

    import vla_core
    vla_core.list_components(kind="heads", filter="Flow*")
    config = vla_core.load_config("configs/quickstart.yaml", overrides=["train.steps=10"])
    vla = vla_core.build_vla(config.model)
    vla = vla_core.load_pretrained("runs/quickstart/checkpoints/step-2000")
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("vla-core")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

# name -> module that defines it; imported on first attribute access.
_LAZY = {
    "list_components": "vla_core.registry",
    "register": "vla_core.registry",
    "unregister": "vla_core.registry",
    "KINDS": "vla_core.registry",
    "build_component": "vla_core.models.build",
    "build_vla": "vla_core.models.build",
    "load_config": "vla_core.config.loading",
    "load_pretrained": "vla_core.models.pretrained",
    "BaseVLA": "vla_core.models.base_vla",
    "hookimpl": "vla_core.hooks",
    "hookspec": "vla_core.hooks",
    "BackboneOutput": "vla_core.protocols",
    "VLAError": "vla_core.errors",
    "ConfigError": "vla_core.errors",
    "CheckpointError": "vla_core.errors",
    "DataError": "vla_core.errors",
}

__all__ = [
    "KINDS",
    "BackboneOutput",
    "BaseVLA",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "VLAError",
    "__version__",
    "build_component",
    "build_vla",
    "hookimpl",
    "hookspec",
    "list_components",
    "load_config",
    "load_pretrained",
    "register",
    "unregister",
]

if TYPE_CHECKING:
    from vla_core.config.loading import load_config
    from vla_core.errors import CheckpointError, ConfigError, DataError, VLAError
    from vla_core.hooks import hookimpl, hookspec
    from vla_core.models.base_vla import BaseVLA
    from vla_core.models.build import build_component, build_vla
    from vla_core.models.pretrained import load_pretrained
    from vla_core.protocols import BackboneOutput
    from vla_core.registry import KINDS, list_components, register, unregister


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vla_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
