"""vla-paligemma: PaliGemma, the Gemma action expert, pi0 and pi0.5.

Components (entry points, imported only when a config names them):
    vla.vlm_backbones  PaliGemma          SigLIP vision tower + linear projector + Gemma LM
    vla.llm_backbones  GemmaLLMBackbone   the action expert (Gemma 300M shape by default; adaRMS for pi0.5)
    vla.vlas           PI0FlowMatching    pi0: prefix through PaliGemma, suffix through the expert, flow matching
                       PI05FlowMatching   pi0.5: adaRMS time conditioning, discretised state in the prefix
    vla.plugins        vla_paligemma.hooks  `load_pretrained` on a transformers PI0 directory

This module stays light: it imports nothing (no torch), so `vla list-components` is fast.
"""
