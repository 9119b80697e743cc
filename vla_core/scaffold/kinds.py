"""What `vla plugin new --kind K` writes for each kind: the registry group, the module
holding the component, and a sentence for the README."""

from __future__ import annotations

from typing import NamedTuple


class KindTemplate(NamedTuple):
    """One kind of component the scaffold can write.

    Attributes:
        kind: the name `--kind` takes (head, vlm_backbone, ...).
        registry_kind: the registry's kind; its entry-point group is `vla.<registry_kind>`.
        component_module: the module of the generated package that defines the class.
        summary: what the generated component computes (README, pyproject description).
        dependencies: the distributions the generated package depends on.
    """

    kind: str
    registry_kind: str
    component_module: str
    summary: str
    dependencies: tuple[str, ...] = ("vla-core", "torch")


KIND_TEMPLATES: dict[str, KindTemplate] = {
    t.kind: t
    for t in (
        KindTemplate("head", "heads", "head",
                     "an action head: an MLP over the masked mean of the backbone features and the state, "
                     "trained with a masked L1 loss"),
        KindTemplate("vlm_backbone", "vlm_backbones", "backbone",
                     "a vision-language backbone: patch-embedded camera images and embedded instruction tokens "
                     "read by one transformer encoder"),
        KindTemplate("vision_backbone", "vision_backbones", "vision",
                     "an image encoder: a patch embedding and a transformer encoder, (B, 3, H, W) -> (B, P, D)"),
        KindTemplate("llm_backbone", "llm_backbones", "llm",
                     "a small causal transformer language model over token and image embeddings"),
        KindTemplate("projector", "projectors", "projector",
                     "a projector: LayerNorm and a two-layer GELU MLP from in_dim to out_dim"),
        KindTemplate("vla", "vlas", "vla",
                     "a VLA: LLaVA-style vision -> projector -> LLM with the robot state as one more token, "
                     "read by any action head"),
        KindTemplate("dataset", "datasets", "dataset",
                     "a dataset: episodes stored as one .npz file each, served as raw samples with action chunks",
                     ("vla-core", "numpy")),
        KindTemplate("env", "envs", "env",
                     "a simulator env: a point on a plane that must reach the coloured dot the instruction names, "
                     "with a scripted expert", ("vla-core", "numpy")),
    )
}
