"""vla-paligemma: PaliGemma, the Gemma action expert, pi0 and pi0.5.

Components (entry points, imported only when a config names them):
    vla.vlm_backbones  PaliGemma          SigLIP vision tower + linear projector + Gemma LM
    vla.llm_backbones  GemmaLLMBackbone   the action expert (Gemma 300M shape by default; adaRMS for pi0.5)
    vla.vlas           PI0FlowMatching    pi0: prefix through PaliGemma, suffix through the expert, flow matching
                       PI05FlowMatching   pi0.5: adaRMS time conditioning, the discretised state in the prompt text
    vla.processors     OpenPIProcessor    openpi's input/output transforms (slots, resize-with-pad, norm_stats.json,
                                          SentencePiece prompt)
    vla.plugins        vla_paligemma.hooks  `load_pretrained` on transformers PI0 / openpi PyTorch directories

This module stays light: it imports nothing (no torch), so `vla list-components` is fast.
"""
