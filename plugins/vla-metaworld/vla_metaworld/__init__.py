"""vla-metaworld: Meta-World v3 tasks as a `vla.envs` plugin, with scripted experts and
fast offscreen rendering on a CPU.

    vla data generate --env metaworld --tasks drawer-close,window-open --episodes 20 --out data/mw
    vla eval runs/quickstart/checkpoints/step-3000 --env metaworld --tasks drawer-close --episodes 20

This package stays light (no numpy, torch or MuJoCo at import); `MetaWorldEnv` lives in
`vla_metaworld.env`.
"""

from __future__ import annotations

__all__ = ["DEMO_TASKS", "MT10", "TASKS"]

from vla_metaworld.tasks import DEMO_TASKS, MT10, TASKS
