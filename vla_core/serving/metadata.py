"""What a policy server tells its clients about the policy (GET /metadata)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def policy_metadata(policy: Any, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """JSON-able facts a robot client needs: cameras, state and action dims, model type."""
    processor = getattr(policy, "processor", None)
    vla = getattr(policy, "vla", None)
    facts: dict[str, Any] = {"checkpoint": str(checkpoint) if checkpoint else None}
    spec = getattr(vla, "component_spec", None) or {}
    facts["model_type"] = spec.get("type")
    for name in ("cameras", "state_dim", "action_dim"):
        try:
            facts[name] = getattr(processor, name, None)
        except Exception:  # an unfitted processor raises; leave the fact out
            facts[name] = None
    return facts
