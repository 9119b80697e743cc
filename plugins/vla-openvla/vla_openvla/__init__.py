"""vla-openvla: OpenVLA and OpenVLA-OFT, checkpoint-compatible with the released models.

Components (entry points, imported only when a config names them):
    vla.vision_backbones  PrismaticVisionBackbone   DINOv2 + SigLIP fused featurizer (timm)
    vla.projectors        PrismaticProjector        fused GELU MLP, gelu-mlp, linear
    vla.heads             L1RegressionActionHead    OpenVLA-OFT MLP-ResNet regression head
    vla.vlas              OpenVLA                   action tokens decoded by LLaMA-2's LM head
                          OpenVLAOFT                parallel decoding of an action chunk
    vla.processors        OpenVLAProcessor          the released pipeline: prompt, PIL bicubic, crops,
                                                    unnorm_key + masks, OFT proprio clip
    vla.plugins           vla_openvla.hooks         loads Hugging Face OpenVLA checkpoint dirs

This module stays light: it imports nothing (no torch), so `vla list-components` is fast.
"""
