"""Offscreen OpenGL without a display: choose EGL or OSMesa before MuJoCo is imported.

MuJoCo picks its GL backend from `MUJOCO_GL` once, when `mujoco` is first imported, so
`configure_gl()` must run before that. On a CPU machine both backends render with Mesa's
software rasteriser (llvmpipe); EGL is preferred (faster, and present wherever Mesa's
`libegl1` + `libgl1-mesa-dri` are), OSMesa (`libosmesa6`) is the fallback.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable

from vla_core.errors import EnvError

#: backend -> (shared libraries it needs, Debian/Ubuntu packages that provide them).
BACKENDS: dict[str, tuple[tuple[str, ...], str]] = {
    "egl": (("EGL",), "libegl1 libgl1-mesa-dri"),
    "osmesa": (("OSMesa",), "libosmesa6"),
}


def install_hint(backend: str) -> str:
    packages = BACKENDS[backend][1]
    return f"install them with `sudo apt-get install -y {packages}` (Debian/Ubuntu; `make demo` does this)"


def missing_libraries(backend: str, find_library: Callable[[str], str | None] = ctypes.util.find_library) -> list[str]:
    """The shared libraries of `backend` that the dynamic loader cannot find."""
    return [f"lib{name}" for name in BACKENDS[backend][0] if find_library(name) is None]


def choose_backend(requested: str, find_library: Callable[[str], str | None] = ctypes.util.find_library) -> str:
    """The GL backend to use given `MUJOCO_GL` (`requested`, may be empty).

    An explicit 'egl' or 'osmesa' is checked; any other explicit value (glfw, glx) is
    trusted; an empty one picks EGL, else OSMesa. Raises EnvError naming the packages to
    install when the libraries are missing.
    """
    requested = requested.strip().lower()
    if requested in BACKENDS:
        missing = missing_libraries(requested, find_library)
        if missing:
            raise EnvError(
                f"MUJOCO_GL={requested} but the OpenGL libraries {', '.join(missing)} are not installed; "
                f"{install_hint(requested)}, or unset MUJOCO_GL to let vla-metaworld pick a backend."
            )
        return requested
    if requested:
        return requested
    for backend in BACKENDS:
        if not missing_libraries(backend, find_library):
            return backend
    raise EnvError(
        "Meta-World renders camera images offscreen, but no offscreen OpenGL library was found (neither "
        f"libEGL nor libOSMesa). Install Mesa's EGL: `sudo apt-get install -y {BACKENDS['egl'][1]}` "
        f"(or OSMesa: `sudo apt-get install -y {BACKENDS['osmesa'][1]}` and set MUJOCO_GL=osmesa); "
        "`make demo` and `make test` install them on Debian/Ubuntu."
    )


def configure_gl() -> str:
    """Set `MUJOCO_GL` (and PyOpenGL's platform) for offscreen rendering; returns the backend.

    If MuJoCo is already imported its backend is fixed, and the current value is returned.
    """
    requested = os.environ.get("MUJOCO_GL", "")
    if "mujoco" in sys.modules:
        return requested.strip().lower() or "glfw"
    backend = choose_backend(requested)
    os.environ["MUJOCO_GL"] = backend
    if backend in BACKENDS:
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend
