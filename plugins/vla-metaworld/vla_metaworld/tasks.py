"""The Meta-World v3 tasks: an instruction for each, the scripted expert that solves it.

Meta-World ships no language, so each task gets one imperative sentence written here.
Besides the 50 tasks, `variants.py` defines variants of them with less to see (a target
shown only at the start, no proprio state); they are named and grouped like tasks.
This module imports nothing heavy: the task list and its errors are available without
loading MuJoCo.
"""

from __future__ import annotations

import difflib

from vla_core.errors import EnvError
from vla_metaworld.variants import HISTORY_TASKS, VARIANTS

#: task name -> (instruction, class name of its scripted expert in `metaworld.policies`).
TASKS: dict[str, tuple[str, str]] = {
    "assembly-v3": ("put the nut onto the peg", "SawyerAssemblyV3Policy"),
    "basketball-v3": ("dunk the ball into the basket", "SawyerBasketballV3Policy"),
    "bin-picking-v3": ("move the puck from one bin into the other bin", "SawyerBinPickingV3Policy"),
    "box-close-v3": ("put the lid on the box", "SawyerBoxCloseV3Policy"),
    "button-press-topdown-v3": ("press the button from the top", "SawyerButtonPressTopdownV3Policy"),
    "button-press-topdown-wall-v3": (
        "reach over the wall and press the button from the top",
        "SawyerButtonPressTopdownWallV3Policy",
    ),
    "button-press-v3": ("press the button", "SawyerButtonPressV3Policy"),
    "button-press-wall-v3": ("reach around the wall and press the button", "SawyerButtonPressWallV3Policy"),
    "coffee-button-v3": ("press the button on the coffee machine", "SawyerCoffeeButtonV3Policy"),
    "coffee-pull-v3": ("pull the mug out of the coffee machine", "SawyerCoffeePullV3Policy"),
    "coffee-push-v3": ("push the mug under the coffee machine", "SawyerCoffeePushV3Policy"),
    "dial-turn-v3": ("turn the dial", "SawyerDialTurnV3Policy"),
    "disassemble-v3": ("take the nut off the peg", "SawyerDisassembleV3Policy"),
    "door-close-v3": ("close the door", "SawyerDoorCloseV3Policy"),
    "door-lock-v3": ("lock the door", "SawyerDoorLockV3Policy"),
    "door-open-v3": ("open the door", "SawyerDoorOpenV3Policy"),
    "door-unlock-v3": ("unlock the door", "SawyerDoorUnlockV3Policy"),
    "drawer-close-v3": ("close the drawer", "SawyerDrawerCloseV3Policy"),
    "drawer-open-v3": ("open the drawer", "SawyerDrawerOpenV3Policy"),
    "faucet-close-v3": ("turn the faucet off", "SawyerFaucetCloseV3Policy"),
    "faucet-open-v3": ("turn the faucet on", "SawyerFaucetOpenV3Policy"),
    "hammer-v3": ("hammer the nail into the wall", "SawyerHammerV3Policy"),
    "hand-insert-v3": ("put the gripper into the hole", "SawyerHandInsertV3Policy"),
    "handle-press-side-v3": ("press the handle down from the side", "SawyerHandlePressSideV3Policy"),
    "handle-press-v3": ("press the handle down", "SawyerHandlePressV3Policy"),
    "handle-pull-side-v3": ("pull the handle up from the side", "SawyerHandlePullSideV3Policy"),
    "handle-pull-v3": ("pull the handle up", "SawyerHandlePullV3Policy"),
    "lever-pull-v3": ("pull the lever up", "SawyerLeverPullV3Policy"),
    "peg-insert-side-v3": ("insert the peg into the hole from the side", "SawyerPegInsertionSideV3Policy"),
    "peg-unplug-side-v3": ("unplug the peg from the side", "SawyerPegUnplugSideV3Policy"),
    "pick-out-of-hole-v3": ("pick the puck out of the hole", "SawyerPickOutOfHoleV3Policy"),
    "pick-place-v3": ("pick up the puck and place it at the goal", "SawyerPickPlaceV3Policy"),
    "pick-place-wall-v3": ("pick up the puck and place it behind the wall", "SawyerPickPlaceWallV3Policy"),
    "plate-slide-back-side-v3": ("slide the plate back out from the side", "SawyerPlateSlideBackSideV3Policy"),
    "plate-slide-back-v3": ("slide the plate back out of the cabinet", "SawyerPlateSlideBackV3Policy"),
    "plate-slide-side-v3": ("slide the plate into the cabinet from the side", "SawyerPlateSlideSideV3Policy"),
    "plate-slide-v3": ("slide the plate into the cabinet", "SawyerPlateSlideV3Policy"),
    "push-back-v3": ("push the puck back to the goal", "SawyerPushBackV3Policy"),
    "push-v3": ("push the puck to the goal", "SawyerPushV3Policy"),
    "push-wall-v3": ("push the puck around the wall to the goal", "SawyerPushWallV3Policy"),
    "reach-v3": ("reach the goal", "SawyerReachV3Policy"),
    "reach-wall-v3": ("reach over the wall to the goal", "SawyerReachWallV3Policy"),
    "shelf-place-v3": ("put the puck on the shelf", "SawyerShelfPlaceV3Policy"),
    "soccer-v3": ("kick the ball into the goal", "SawyerSoccerV3Policy"),
    "stick-pull-v3": ("pull the box with the stick", "SawyerStickPullV3Policy"),
    "stick-push-v3": ("push the box with the stick", "SawyerStickPushV3Policy"),
    "sweep-into-v3": ("sweep the puck into the hole", "SawyerSweepIntoV3Policy"),
    "sweep-v3": ("sweep the puck off the table", "SawyerSweepV3Policy"),
    "window-close-v3": ("close the window", "SawyerWindowCloseV3Policy"),
    "window-open-v3": ("open the window", "SawyerWindowOpenV3Policy"),
}

#: The ten tasks of Meta-World's MT10 benchmark, in its order.
MT10: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)

#: The three tasks `make demo` trains and evaluates on.
DEMO_TASKS: tuple[str, ...] = ("drawer-close-v3", "button-press-topdown-v3", "window-open-v3")

#: Task groups a `--tasks` list may name instead of single tasks.
TASK_GROUPS: dict[str, tuple[str, ...]] = {
    "mt10": MT10,
    "demo": DEMO_TASKS,
    "mt50": tuple(TASKS),
    "history": HISTORY_TASKS,  # the variants where observation history should matter
}

#: Every name `reset` accepts: the 50 tasks, then the variants.
ALL_TASKS: tuple[str, ...] = (*TASKS, *VARIANTS)


def canonical_task(name: str) -> str:
    """'drawer-close' or 'drawer-close-v3' -> 'drawer-close-v3'; an unknown name raises
    EnvError with the closest names and the full list."""
    name = name.strip()
    candidate = name if name.endswith("-v3") else f"{name}-v3"
    if candidate in TASKS or candidate in VARIANTS:
        return candidate
    close = difflib.get_close_matches(candidate, list(ALL_TASKS), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c.removesuffix('-v3')) for c in close)}?" if close else ""
    raise EnvError(
        f"Unknown Meta-World task '{name}'.{hint} Known tasks (the '-v3' suffix is optional): "
        f"{', '.join(t.removesuffix('-v3') for t in ALL_TASKS)}; groups: {', '.join(TASK_GROUPS)}."
    )


def expand_tasks(names: list[str] | tuple[str, ...]) -> list[str]:
    """Task names and group names ('mt10', 'demo', 'history') -> canonical task names, in order, once each."""
    tasks: list[str] = []
    for name in names:
        group = TASK_GROUPS.get(name.strip().lower())
        for task in group if group is not None else (canonical_task(name),):
            if task not in tasks:
                tasks.append(task)
    return tasks


def instruction(task: str) -> str:
    """The instruction sentence of a task or variant, e.g. 'close the drawer'."""
    task = canonical_task(task)
    return VARIANTS[task].instruction if task in VARIANTS else TASKS[task][0]


def base_task(task: str) -> str:
    """The Meta-World task behind a name: itself, or a variant's base (its layouts, physics, expert)."""
    task = canonical_task(task)
    return VARIANTS[task].base if task in VARIANTS else task
