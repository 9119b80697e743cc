"""`vla build --depth N` prints the module names LoRA can target; `vla config validate` warns."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "configs" / "tiny_llava.yaml")


def _printed_names(out: str) -> list[str]:
    """The dotted module names at the start of each tree label (after the guide lines)."""
    names = []
    for line in out.splitlines()[1:]:
        match = re.match(r"^[\s│├└─]*([A-Za-z_][\w.]*)\s{2}\S", line)
        if match:
            names.append(match.group(1))
    return names


def test_depth_prints_the_module_tree_as_named_modules_names_it(vla_main):
    import torch

    from vla_core.config.loading import load_config
    from vla_core.models.build import build_vla

    torch.manual_seed(0)
    modules = dict(build_vla(load_config(TINY).model).named_modules())

    code, out, err = vla_main("build", TINY, "--depth", "2")
    assert code == 0, err
    assert out.splitlines()[0].startswith("model  LlavaVLA  ")
    names = _printed_names(out)
    assert {"vision_backbone", "vision_backbone.model", "projector.0", "vla_head.mlp"} <= set(names)
    assert all(name in modules for name in names), set(names) - set(modules)
    assert max(name.count(".") for name in names) == 1  # depth 2: no deeper names
    assert re.search(r"projector\.0  Linear  6\.24K params", out)

    code, out, err = vla_main("build", TINY, "--depth", "4")
    assert code == 0, err
    names = _printed_names(out)
    assert "llm_backbone.model.layers.0" in names and "llm_backbone.model.layers.1" not in names
    joined = re.sub(r"\s*\n[\s│]*", " ", out)  # a long label may wrap onto the next line (between words)
    assert "llm_backbone.model.layers.1: 1 more Qwen2DecoderLayer like llm_backbone.model.layers.0" in joined
    assert all(name in modules for name in names)


def test_depth_must_be_positive(vla_main):
    code, _, err = vla_main("build", TINY, "--depth", "0")
    assert code == 2 and "--depth" in err


def test_validate_warns_about_a_warmup_the_run_never_leaves(vla_main):
    code, out, err = vla_main("config", "validate", TINY, "--set", "train.warmup_steps=200")
    assert code == 0 and out.startswith(f"{TINY}: valid")
    assert err.startswith("warning: train.warmup_steps (200) is not shorter than train.steps (100)")
