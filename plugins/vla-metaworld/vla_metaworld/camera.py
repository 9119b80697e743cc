"""Fast offscreen rendering of one Meta-World camera on a CPU.

Mesa's software rasteriser spends most of a default frame on shadow maps, 4x MSAA,
reflections and a 640x480 offscreen buffer; none of it matters to a 64-128 px policy
input. Turning them off takes a frame from ~70-150 ms to ~8 ms (benchmarks/metaworld_demo.py
prints the figure).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import weakref

import numpy as np

from vla_core.errors import EnvError
from vla_metaworld.gl import BACKENDS, configure_gl, install_hint

#: Meta-World's fixed cameras.
CAMERAS: tuple[str, ...] = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")

# Their xml orientations have the image's up axis pointing down: the rendered image is
# upside down (rotated 180 degrees), so it is turned back upright.
UPSIDE_DOWN_CAMERAS = frozenset({"corner", "corner2", "corner3", "corner4"})

# Scene flags that cost time and add nothing at this resolution.
_SLOW_FLAGS = ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX", "mjRND_FOG", "mjRND_HAZE")


def load_triton_before_mesa() -> None:
    """Mesa's software rasteriser (llvmpipe) loads the system libLLVM into the process, and
    triton (shipped with CUDA builds of torch, imported by transformers) segfaults when its
    own LLVM is loaded after that. Loading triton first avoids the crash."""
    if importlib.util.find_spec("triton") is not None:
        with contextlib.suppress(Exception):
            import triton  # noqa: F401


def check_camera(camera: str) -> None:
    if camera not in CAMERAS:
        raise EnvError(f"Unknown Meta-World camera '{camera}'. Cameras: {', '.join(CAMERAS)}.")


class FastCamera:
    """Renders one camera of a MuJoCo model as an upright uint8 (size, size, 3) image.

    Args:
        model: the env's `mujoco.MjModel` (its visual options are changed for speed).
        camera: camera name, one of CAMERAS.
        size: image height and width in pixels.
    """

    def __init__(self, model: object, camera: str, size: int) -> None:
        check_camera(camera)
        backend = configure_gl()
        load_triton_before_mesa()
        import mujoco

        model.vis.global_.offwidth = size  # the smallest offscreen buffer that holds the image
        model.vis.global_.offheight = size
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0  # no MSAA
        try:
            self.renderer = mujoco.Renderer(model, size, size)
        except Exception as exc:  # the GL context could not be made: libraries or drivers missing
            hint = install_hint(backend) if backend in BACKENDS else f"check that MUJOCO_GL={backend} works here"
            raise EnvError(
                f"could not create an offscreen OpenGL context with MUJOCO_GL={backend} "
                f"({type(exc).__name__}: {exc}). The GL libraries are missing or incomplete: {hint}."
            ) from exc
        for flag in _SLOW_FLAGS:
            self.renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = 0
        self.camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        self.upside_down = camera in UPSIDE_DOWN_CAMERAS
        self.size = size
        # Free the GL context before MuJoCo's EGL display is terminated at exit (atexit runs
        # last-registered first, and mujoco registered its handler when it was imported).
        atexit.register(_close_ref, weakref.ref(self))

    def render(self, data: object) -> np.ndarray:
        """The camera's view of `data` (an MjData) -> uint8 (size, size, 3), upright."""
        self.renderer.update_scene(data, camera=self.camera_id)
        image = self.renderer.render()
        if self.upside_down:
            image = image[::-1, ::-1]
        return np.ascontiguousarray(image)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None


def _close_ref(ref: weakref.ref) -> None:
    camera = ref()
    if camera is not None:
        camera.close()
