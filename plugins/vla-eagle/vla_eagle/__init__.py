"""vla-eagle: the Eagle 2.5 vision-language backbone of GR00T N1.5.

Components (entry points, imported only when a config names them):
    vla.vlm_backbones  EagleBackbone   SigLIP -> (pixel shuffle) -> mlp1 -> Qwen3 truncated to
                                       `select_layer` layers -> eagle_linear

GR00T N1.5 is composed by config, never by import: LlavaVLA + EagleBackbone +
FlowMatchingHead (plugin vla-heads-flow); see configs/groot_n15_tiny.yaml and docs/eagle.md.

This module stays light: it imports nothing (no torch), so `vla list-components` is fast.
"""
