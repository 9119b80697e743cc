"""Task variants where observation history should matter: a Meta-World task with less to see.

A variant is a Meta-World v3 task (its layouts, physics, success test and scripted expert)
whose *observation* is changed:

- `reach-goal-at-start-v3`: reach, with the goal marker shown only during the first
  `GOAL_VISIBLE_STEPS` steps of the episode (and enlarged so that it shows at 64 px), then
  hidden. A policy that reads one frame knows where the goal is only at the start; one that
  reads a window sees the hand move towards it (the expert's velocity is proportional to
  the distance left, so the motion points at the goal).
- `button-press-topdown-no-state-v3`: the button press with the proprio state left out
  (all zeros): where the hand is and how it moves must come from the images.

The expert still reads the simulator's full state, so the demonstrations are the base
task's. This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Steps (from reset) during which `reach-goal-at-start`'s goal is drawn: 0.1 s at 80 fps.
GOAL_VISIBLE_STEPS = 8


@dataclass(frozen=True)
class TaskVariant:
    """What a variant changes in its base task's observation.

    Attributes:
        base: the Meta-World v3 task it is built on (layouts, physics, success, expert).
        instruction: its instruction sentence (different from every task's).
        marker_sites: MuJoCo sites that mark the target (drawn only while visible).
        marker_radius: radius the marker sites are drawn with; None keeps the model's.
        visible_steps: the markers are drawn while the episode has taken fewer steps than
            this; None draws them always.
        state: False leaves the proprio state out (the observation's state is all zeros).
    """

    base: str
    instruction: str
    marker_sites: tuple[str, ...] = ()
    marker_radius: float | None = None
    visible_steps: int | None = None
    state: bool = True

    def marker_visible(self, steps: int) -> bool:
        """Whether the target markers are drawn after `steps` steps of the episode."""
        return self.visible_steps is None or steps < self.visible_steps


VARIANTS: dict[str, TaskVariant] = {
    "reach-goal-at-start-v3": TaskVariant(
        base="reach-v3",
        instruction="reach the goal shown at the start",
        marker_sites=("goal",),
        marker_radius=0.04,  # Meta-World draws it 0.02: two pixels at 64 px
        visible_steps=GOAL_VISIBLE_STEPS,
    ),
    "button-press-topdown-no-state-v3": TaskVariant(
        base="button-press-topdown-v3",
        instruction="press the button from the top without the arm state",
        state=False,
    ),
}

#: The two variants, the tasks of the history benchmark (docs/benchmarks.md).
HISTORY_TASKS: tuple[str, ...] = tuple(VARIANTS)
