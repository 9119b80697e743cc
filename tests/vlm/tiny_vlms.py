"""Tiny random image-text-to-text models saved like a downloaded one: weights, config,
image processor, tokenizer and chat template in one directory.

Nothing can be downloaded in the tests, so each family's directory is made here from
transformers' own config, model, image-processor and processor classes; only the
tokenizer (a word-level vocabulary with the family's special tokens) and the chat template
(the family's image/text layout, reduced to one user turn) are written by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = ["pick", "up", "the", "red", "block", "and", "place", "it", "in", "box", "open", "drawer", "a", "cup"]
HIDDEN = 32
TEXT = {"hidden_size": HIDDEN, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2}

# The user turn of each family's template: images first, then the text (as the released
# templates render a single user message with images and text).
QWEN_TEMPLATE = (
    "<|im_start|>user\n{% for m in messages %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endfor %}<|im_end|>\n{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}<start_of_turn>user\n{% for m in messages %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<start_of_image>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endfor %}<end_of_turn>\n{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
IDEFICS_TEMPLATE = (
    "<|im_start|>User:{% for m in messages %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %} {{ c['text'] }}{% endif %}"
    "{% endfor %}{% endfor %}<end_of_utterance>\n{% if add_generation_prompt %}Assistant:{% endif %}"
)

SPECIALS = {
    "qwen2_5_vl": ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                   "<|video_pad|>"],
    "qwen3_vl": ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                 "<|video_pad|>"],
    "gemma3": ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
               "<image_soft_token>"],
    "smolvlm": ["<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>", "<global-img>"],
}
FAMILIES = tuple(SPECIALS)


def make_tokenizer(family: str) -> Any:
    """A word-level fast tokenizer: [PAD], [UNK], the family's special tokens, then WORDS and
    the template words (User, Assistant, user, model, :)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", *SPECIALS[family]]
    words = [*WORDS, "User", "Assistant", "user", "model", ":"]
    vocab = {token: i for i, token in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    kwargs: dict[str, Any] = {"pad_token": "[PAD]", "unk_token": "[UNK]"}
    if family == "gemma3":
        kwargs.update(bos_token="<bos>", eos_token="<eos>", add_bos_token=True,
                      extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                            "image_token": "<image_soft_token>"})
    if family == "gemma3":  # Gemma's tokenizer prepends <bos> to every text
        from tokenizers import processors

        bos = vocab["<bos>"]
        backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[family]})
    return tokenizer


def _qwen_text(vocab: int, head_dim: int) -> dict[str, Any]:
    """Qwen's text config: multimodal rotary sections (t, h, w) that fill head_dim / 2."""
    half = head_dim // 2
    section = [half - 2 * (half // 3), half // 3, half // 3]
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section}
    return {**TEXT, "vocab_size": vocab, "head_dim": head_dim, "rope_parameters": rope, "pad_token_id": 0,
            "bos_token_id": None, "eos_token_id": None}


def build(family: str, directory: str | Path, seed: int = 0) -> Path:
    """Write a tiny random `family` model with its processor into `directory`; returns it."""
    import torch
    import transformers as tf

    directory = Path(directory)
    tokenizer = make_tokenizer(family)
    vocab = len(tokenizer)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIALS[family]}
    torch.manual_seed(seed)
    if family in ("qwen2_5_vl", "qwen3_vl"):
        text = _qwen_text(vocab, HIDDEN // TEXT["num_attention_heads"])
        token_ids = {"image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
                     "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"]}
        if family == "qwen2_5_vl":
            vision = {"depth": 2, "hidden_size": HIDDEN, "intermediate_size": 64, "num_heads": 2,
                      "out_hidden_size": HIDDEN, "patch_size": 14, "window_size": 56, "fullatt_block_indexes": [1]}
            config = tf.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **token_ids)
            model = tf.Qwen2_5_VLForConditionalGeneration(config)
            patch = 14
        else:
            vision = {"depth": 2, "hidden_size": HIDDEN, "intermediate_size": 64, "num_heads": 2,
                      "out_hidden_size": HIDDEN, "patch_size": 14, "num_position_embeddings": 16,
                      "deepstack_visual_indexes": [0]}
            config = tf.Qwen3VLConfig(text_config=text, vision_config=vision, **token_ids)
            model = tf.Qwen3VLForConditionalGeneration(config)
            patch = 14
        image_processor = tf.Qwen2VLImageProcessor(patch_size=patch, merge_size=2, temporal_patch_size=2,
                                                   min_pixels=4 * patch * patch, max_pixels=64 * patch * patch)
        cls = tf.Qwen2_5_VLProcessor if family == "qwen2_5_vl" else tf.Qwen3VLProcessor
        video = tf.Qwen2VLVideoProcessor() if family == "qwen2_5_vl" else tf.Qwen3VLVideoProcessor()
        extra = {"video_processor": video}
        processor = cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN_TEMPLATE, **extra)
    elif family == "gemma3":
        text = {**TEXT, "vocab_size": vocab, "head_dim": 8, "sliding_window": 16, "pad_token_id": 0,
                "bos_token_id": ids["<bos>"], "eos_token_id": ids["<eos>"]}
        vision = {"hidden_size": HIDDEN, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "image_size": 28, "patch_size": 7}
        config = tf.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                                 boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
                                 image_token_index=ids["<image_soft_token>"])
        model = tf.Gemma3ForConditionalGeneration(config)
        image_processor = tf.Gemma3ImageProcessor(size={"height": 28, "width": 28}, do_pan_and_scan=False)
        processor = tf.Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                       chat_template=GEMMA_TEMPLATE, image_seq_length=4)
    elif family == "smolvlm":  # SmolVLM's released checkpoints are transformers' idefics3 model type
        text = {**TEXT, "model_type": "llama", "vocab_size": vocab, "pad_token_id": 0}
        vision = {"hidden_size": HIDDEN, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "image_size": 32, "patch_size": 8}
        config = tf.Idefics3Config(text_config=text, vision_config=vision, scale_factor=2,
                                   image_token_id=ids["<image>"], tie_word_embeddings=False)
        model = tf.Idefics3ForConditionalGeneration(config)
        image_processor = tf.Idefics3ImageProcessor(size={"longest_edge": 32}, max_image_size={"longest_edge": 32},
                                                    do_image_splitting=False)
        processor = tf.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                         chat_template=IDEFICS_TEMPLATE)
    else:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
