"""Human-readable model summaries and a random observation for smoke runs (`vla build`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _count(module: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable


def human_count(n: int) -> str:
    """1234567 -> "1.23M"."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def component_tree(vla: nn.Module) -> Any:
    """A rich Tree of the VLA's components (children built from specs) with parameter counts."""
    from rich.tree import Tree

    def label(name: str, module: nn.Module) -> str:
        total, trainable = _count(module)
        spec = getattr(module, "component_spec", None)
        kind = f" [cyan]{spec['type']}[/]" if isinstance(spec, dict) else f" [dim]{type(module).__name__}[/]"
        frozen = "" if trainable == total else f", {human_count(trainable)} trainable"
        return f"[bold]{name}[/]{kind}  {human_count(total)} params{frozen}"

    root = Tree(label("model", vla))

    def add(node: Any, module: nn.Module) -> None:
        for name, child in module.named_children():
            if getattr(child, "component_spec", None) is not None:
                add(node.add(label(name, child)), child)
            elif any(getattr(m, "component_spec", None) is not None for m in child.modules()):
                add(node, child)
            elif module is vla:
                node.add(label(name, child))

    add(root, vla)
    return root


def module_tree(model: nn.Module, depth: int) -> Any:
    """A rich Tree of `model`'s modules down to `depth` levels, each labelled with its
    dotted name as `named_modules()` (and so LoRA's `target_modules` and FSDP wrapping)
    names it, its class and its parameter count. A run of numbered siblings of one class
    and size (a transformer's layers) shows its first member and one line for the rest."""
    from rich.text import Text
    from rich.tree import Tree

    def label(name: str, module: nn.Module) -> Text:
        total, trainable = _count(module)
        frozen = "" if trainable == total else f", {human_count(trainable)} trainable"
        text = Text(name or "model", style="bold")
        text.append(f"  {type(module).__name__}", style="cyan")
        text.append(f"  {human_count(total)} params{frozen}")
        return text

    def add(node: Any, prefix: str, module: nn.Module, level: int) -> None:
        if level >= depth:
            return
        children = list(module.named_children())
        i = 0
        while i < len(children):
            name, child = children[i]
            full = f"{prefix}.{name}" if prefix else name
            add(node.add(label(full, child)), full, child, level + 1)
            run = _same_run(children, i)
            if run > 1:
                rest = f"{prefix}.{children[i + 1][0]}" if prefix else children[i + 1][0]
                span = rest if run == 2 else f"{rest} … {children[i + run - 1][0]}"
                node.add(Text(f"{span}: {run - 1} more {type(child).__name__} like {full}", style="dim"))
            i += run

    root = Tree(label("", model))
    add(root, "", model, 0)
    return root


def _same_run(children: list[tuple[str, nn.Module]], start: int) -> int:
    """How many children from `start` on are numbered (0, 1, ...) modules of the same class
    and parameter count (1 if the child at `start` begins no such run)."""
    name, first = children[start]
    if not name.isdigit():
        return 1
    size = _count(first)[0]
    end = start + 1
    while end < len(children):
        other_name, other = children[end]
        if not other_name.isdigit() or type(other) is not type(first) or _count(other)[0] != size:
            break
        end += 1
    return end - start


def find_config_value(vla: nn.Module, attribute: str) -> Any:
    """The first int `attribute` of a transformers config inside `vla` (None if there is none)."""
    for module in vla.modules():
        config = getattr(module, "config", None)
        value = getattr(config, attribute, None)
        if isinstance(value, int):
            return value
    return None


def random_observation(vla: nn.Module, batch_size: int = 1, seed: int = 0, num_cameras: int = 1) -> dict[str, Any]:
    """Random model inputs shaped for `vla`: image size and vocabulary read from the
    transformers configs inside it, state width from the head (`state_dim`) or the VLA
    (`max_state_dim`). For smoke runs only; real inputs come from a processor."""
    g = torch.Generator().manual_seed(seed)
    image_size = find_config_value(vla, "image_size") or 224
    vocab = find_config_value(vla, "vocab_size") or 32
    head = getattr(vla, "vla_head", None)
    state_dim = getattr(vla, "max_state_dim", None) or getattr(head, "state_dim", None) or 8
    seq_len = 8
    return {
        "images": torch.randn(batch_size, num_cameras, 3, image_size, image_size, generator=g),
        "img_masks": torch.ones(batch_size, num_cameras, dtype=torch.bool),
        "lang_tokens": torch.randint(1, vocab, (batch_size, seq_len), generator=g),
        "lang_masks": torch.ones(batch_size, seq_len, dtype=torch.bool),
        "states": torch.randn(batch_size, int(state_dim), generator=g),
    }
