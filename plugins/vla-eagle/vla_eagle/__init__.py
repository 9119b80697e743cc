"""vla-eagle: the Eagle 2.5 vision-language backbone of GR00T N1.5.

Components (entry points, imported only when a config names them):
    vla.vlm_backbones  EagleBackbone   SigLIP -> (pixel shuffle) -> mlp1 -> Qwen3 truncated to
                                       `select_layer` layers -> eagle_linear
    vla.processors     GR00TProcessor  GR00T N1.5's pipeline (the `gr00t` preset): Eagle images and chat
                                       prompt, metadata.json normalisation, embodiment tags
    vla.plugins        vla_eagle.hooks `load_pretrained` / `Policy.from_pretrained` on a GR00T N1.5
                                       checkpoint directory (vla_eagle.gr00t_checkpoint)

GR00T N1.5 is composed by config, never by import: LlavaVLA + EagleBackbone +
FlowMatchingHead (plugin vla-heads-flow); see configs/groot_n15_tiny.yaml and docs/eagle.md.

This module stays light: it imports nothing (no torch), so `vla list-components` is fast.
"""
