"""Reduce-scatter a token embedding's gradient as soon as backward has computed it.

FSDP2 reduce-scatters a unit's gradients in a backward hook on the unit's forward
*inputs*: it fires once the gradient has flowed through the unit. A token embedding's
input is integer ids, which carry no gradient, so that hook is never set and FSDP2 falls
back to its end-of-backward callback. Until then the process holds the embedding's whole
unsharded weight and its whole unsharded gradient (2 x 131 MiB for a 32k x 1024
embedding in fp32) while every layer that runs before it in forward (the vision tower of a
VLA) computes its own gradients: on the 302M benchmark that pair sat on top of the peak.

`reduce_when_accumulated(unit)` adds what the missing hook would have done: a hook on the
unsharded weight that runs once autograd has accumulated its gradient, and there runs the
unit's post-backward (reduce-scatter into the sharded gradient, free the unsharded weight
and gradient). FSDP2's end-of-backward callback skips a unit whose post-backward already
ran, so nothing runs twice; with gradient sync off (accumulation micro-steps) the
post-backward only reshards, as FSDP2's own does.

This reaches into FSDP2's per-unit state (`_get_fsdp_state()._fsdp_param_group`, each
parameter's `_unsharded_param`): torch is pinned (constraints.txt), and on a torch where
those names moved, `reduce_when_accumulated` returns False and FSDP2's callback reduces the
gradient at the end of backward, as before: the same numbers, more memory.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def _param_group(unit: nn.Module) -> Any | None:
    """FSDP2's parameter group of `unit` (one per `fully_shard` call), or None."""
    try:
        group = unit._get_fsdp_state()._fsdp_param_group  # type: ignore[operator]
    except AttributeError:
        return None
    if group is None or not hasattr(group, "post_backward") or not hasattr(group, "fsdp_params"):
        return None
    return group


def reduce_when_accumulated(unit: nn.Module) -> bool:
    """Run `unit`'s FSDP2 post-backward as soon as the gradient of each of its trainable
    weight is accumulated (see the module docstring). `unit` must already be a
    `fully_shard`-ed module with one trainable parameter (an embedding's weight: with
    several, the first one accumulated would reduce the others before their gradients
    exist). True when installed; False for a unit with none or several trainable
    parameters, or on a torch without the FSDP2 internals it uses (the gradient is then
    reduced at the end of backward)."""
    group = _param_group(unit)
    if group is None or sum(p.requires_grad for p in unit.parameters()) != 1:
        return False

    def post_backward(_param: nn.Parameter) -> None:
        group.post_backward()

    def hook_unsharded_weights(module: nn.Module, args: Any, output: Any) -> None:
        # The unsharded parameters exist from the first all-gather on and are reused by
        # every later one (FSDP2 frees and refills their storage): hook each once.
        for fsdp_param in group.fsdp_params:
            weight = getattr(fsdp_param, "_unsharded_param", None)
            if weight is None or not weight.requires_grad or getattr(weight, "_vla_reduce_hooked", False):
                continue
            weight.register_post_accumulate_grad_hook(post_backward)
            weight._vla_reduce_hooked = True

    unit.register_forward_hook(hook_unsharded_weights)
    return True
