"""vla-heads-flow: generative action heads.

Components (entry points, imported only when a config names them):
    vla.heads  FlowMatchingHead           GR00T N1.5 flow-matching DiT head (checkpoint key names)
               FlowMatchingInferenceHead  the same weights, inference only, cached and faster
               DiffusionActionHead        OpenVLA-OFT style DDIM noise prediction, MLP-ResNet denoiser

This module stays light: it imports nothing (no torch), so `vla list-components` is fast.
"""

__version__ = "0.1.0"
