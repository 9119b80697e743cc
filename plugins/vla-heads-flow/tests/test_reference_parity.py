"""Parity with GR00T's equations, computed here independently in float64.

The reference (Isaac-GR00T `cross_attention_dit.py`, `flow_matching_action_head.py`,
`action_encoder.py`, and the diffusers layers they use) is written out below as plain
tensor algebra: explicit LayerNorm, softmax, tanh-GELU, per-head loops, the diffusers
timestep sinusoid (cos first, shift 1) and GR00T's action sinusoid (sin first), both in
float32 as the reference computes them. Our modules run with the same weights in float64;
they must agree to 1e-10.
"""

from __future__ import annotations

import math

import pytest
import torch
from vla_heads_flow.action_encoder import MultiEmbodimentActionEncoder
from vla_heads_flow.dit import DiT, SelfAttentionTransformer
from vla_heads_flow.flow_matching_head import FlowMatchingHead

TOL = 1e-10


# ---- the reference's equations ------------------------------------------------------------
def layer_norm(x, eps, weight=None, bias=None):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    return y if weight is None else y * weight + bias


def silu(x):
    return x / (1 + torch.exp(-x))


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def linear(x, p, name):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def multi_head_attention(x, context, p, prefix, heads, key_mask=None):
    """diffusers Attention: softmax(q k^T / sqrt(d)) v per head, then to_out.0."""
    q, k, v = (linear(src, p, f"{prefix}.{n}") for src, n in ((x, "to_q"), (context, "to_k"), (context, "to_v")))
    d = q.shape[-1] // heads
    outs = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(d)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, :], float("-inf"))
        weights = torch.exp(scores - scores.amax(-1, keepdim=True))
        weights = weights / weights.sum(-1, keepdim=True)
        outs.append(weights @ v[..., sl])
    return linear(torch.cat(outs, dim=-1), p, f"{prefix}.to_out.0")


def feed_forward(x, p, prefix):
    return linear(gelu_tanh(linear(x, p, f"{prefix}.ff.net.0.proj")), p, f"{prefix}.ff.net.2")


def dit_block(h, temb, context, p, prefix, heads, key_mask=None):
    """BasicTransformerBlock with norm_type ada_norm: AdaLN (scale, shift order), attention, FF."""
    emb = linear(silu(temb), p, f"{prefix}.norm1.linear")
    scale, shift = emb.chunk(2, dim=-1)
    normed = layer_norm(h, 1e-5) * (1 + scale[:, None]) + shift[:, None]
    h = h + multi_head_attention(normed, normed if context is None else context, p, f"{prefix}.attn1", heads,
                                 None if context is None else key_mask)
    return h + feed_forward(layer_norm(h, 1e-5), p, prefix)


def vl_block(h, p, prefix, heads, key_mask=None):
    """BasicTransformerBlock with norm_type layer_norm (affine norms), self-attention."""
    normed = layer_norm(h, 1e-5, p[f"{prefix}.norm1.weight"], p[f"{prefix}.norm1.bias"])
    h = h + multi_head_attention(normed, normed, p, f"{prefix}.attn1", heads, key_mask)
    return h + feed_forward(layer_norm(h, 1e-5, p[f"{prefix}.norm3.weight"], p[f"{prefix}.norm3.bias"]), p, prefix)


def timestep_embedding(t, p, prefix):
    """diffusers Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1) + TimestepEmbedding."""
    i = torch.arange(128, dtype=torch.float32)
    freqs = torch.exp(-math.log(10000) * i / (128 - 1))
    args = t.float()[:, None] * freqs  # the reference computes the sinusoid in float32
    proj = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).double()
    return linear(silu(linear(proj, p, f"{prefix}.linear_1")), p, f"{prefix}.linear_2")


def dit(h, context, t, p, heads, interleave, key_mask=None):
    temb = timestep_embedding(t, p, "timestep_encoder.timestep_embedder")
    n_blocks = len({k.split(".")[1] for k in p if k.startswith("transformer_blocks.")})
    for i in range(n_blocks):
        self_attention = interleave and i % 2 == 1
        h = dit_block(h, temb, None if self_attention else context, p, f"transformer_blocks.{i}", heads, key_mask)
    shift, scale = linear(silu(temb), p, "proj_out_1").chunk(2, dim=-1)  # note: (shift, scale) here
    return linear(layer_norm(h, 1e-6) * (1 + scale[:, None]) + shift[:, None], p, "proj_out_2")


def category_linear(x, p, prefix, ids):
    return torch.stack([x[b] @ p[f"{prefix}.W"][e] + p[f"{prefix}.b"][e] for b, e in enumerate(ids.tolist())])


def action_encoder(actions, t_buckets, ids, p, width):
    """GR00T MultiEmbodimentActionEncoder: W3(swish(W2([W1 a, sinusoid(t)])))."""
    i = torch.arange(width // 2, dtype=torch.float32)
    freqs = torch.exp(-i * (torch.log(torch.tensor(10000.0)) / (width // 2)))  # float32, like the reference
    args = t_buckets.float()[:, None, None] * freqs  # (B, 1, w/2), the same for every chunk step
    tau = torch.cat([torch.sin(args), torch.cos(args)], dim=-1).double().expand(-1, actions.shape[1], -1)
    x = torch.cat([category_linear(actions, p, "W1", ids), tau], dim=-1)
    x = category_linear(x, p, "W2", ids)
    return category_linear(x * torch.sigmoid(x), p, "W3", ids)


def sub(state, prefix):
    return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}


def head_velocity(head, p, features, mask, states, x_t, t_buckets, ids, cfg):
    """FlowmatchingActionHead: [state, future tokens, action tokens] through the DiT."""
    vl = layer_norm(features, 1e-5, p["vlln.weight"], p["vlln.bias"])
    for i in range(cfg["vl_self_attention_layers"]):
        vl = vl_block(vl, p, f"vl_self_attention.transformer_blocks.{i}", cfg["vl_self_attention_heads"], mask)
    hidden = torch.relu(category_linear(states[:, None], p, "state_encoder.layer1", ids))
    state_tokens = category_linear(hidden, p, "state_encoder.layer2", ids)
    tokens = action_encoder(x_t, t_buckets, ids, sub(p, "action_encoder"), cfg["input_embedding_dim"])
    tokens = tokens + p["position_embedding.weight"][: x_t.shape[1]]
    future = p["future_tokens.weight"].expand(x_t.shape[0], -1, -1)
    seq = torch.cat([state_tokens, future, tokens], dim=1)
    out = dit(seq, vl, t_buckets, sub(p, "model"), cfg["num_heads"], True, mask)
    hidden = torch.relu(category_linear(out, p, "action_decoder.layer1", ids))
    return category_linear(hidden, p, "action_decoder.layer2", ids)[:, -x_t.shape[1] :]


# ---- tests --------------------------------------------------------------------------------
def test_dit_blocks_match_equations():
    torch.manual_seed(0)
    model = DiT(num_attention_heads=2, attention_head_dim=8, output_dim=12, num_layers=2, dropout=0.0,
                cross_attention_dim=10, interleave_self_attention=True).double().eval()
    p = {k: v.double() for k, v in model.state_dict().items()}
    h, context = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 7, 10, dtype=torch.float64)
    t = torch.tensor([0, 750])
    temb = timestep_embedding(t, p, "timestep_encoder.timestep_embedder")
    assert torch.allclose(model.timestep_encoder(t), temb, atol=TOL)

    # block 0 cross-attends to the context, block 1 (odd, interleaved) attends to itself
    expected0 = dit_block(h, temb, context, p, "transformer_blocks.0", 2)
    assert torch.allclose(model.transformer_blocks[0](h, temb, context), expected0, atol=TOL)
    expected1 = dit_block(h, temb, None, p, "transformer_blocks.1", 2)
    assert torch.allclose(model.transformer_blocks[1](h, temb), expected1, atol=TOL)
    assert model.transformer_blocks[0].attn1.to_k.in_features == 10
    assert model.transformer_blocks[1].attn1.to_k.in_features == 16

    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    assert torch.allclose(model(h, context, t, mask), dit(h, context, t, p, 2, True, mask), atol=TOL)
    assert torch.allclose(model(h, context, t), dit(h, context, t, p, 2, True), atol=TOL)


def test_vl_self_attention_matches_equations():
    torch.manual_seed(0)
    model = SelfAttentionTransformer(num_attention_heads=3, attention_head_dim=4, num_layers=2, dropout=0.0)
    model = model.double().eval()
    p = {k: v.double() for k, v in model.state_dict().items()}
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    expected = x
    for i in range(2):
        expected = vl_block(expected, p, f"transformer_blocks.{i}", 3, mask)
    assert torch.allclose(model(x, mask), expected, atol=TOL)


def test_action_encoder_matches_equations():
    torch.manual_seed(0)
    encoder = MultiEmbodimentActionEncoder(action_dim=3, hidden_size=8, num_embodiments=2).double()
    with torch.no_grad():
        for p in encoder.parameters():
            p.normal_(0, 0.5)  # non-zero biases, every weight matters
    p = dict(encoder.state_dict())
    actions = torch.randn(2, 4, 3, dtype=torch.float64)
    t, ids = torch.tensor([0, 999]), torch.tensor([1, 0])
    assert torch.allclose(encoder(actions, t, ids), action_encoder(actions, t, ids, p, 8), atol=TOL)


@pytest.mark.parametrize("mask_padding", [False, True])  # False: GR00T (every position attended)
def test_head_velocity_and_euler_sampling_match_equations(tiny_flow, flow_inputs, mask_padding):
    torch.manual_seed(0)
    head = FlowMatchingHead(**tiny_flow, mask_padding=mask_padding).double().eval()
    with torch.no_grad():
        for name, p in head.named_parameters():
            if name.endswith(".b") or name.endswith(".bias"):
                p.normal_(0, 0.1)  # GR00T initialises these to zero; make them count
    p = dict(head.state_dict())
    feats = flow_inputs["input_features"].double()
    given, ids = flow_inputs["attention_mask"], flow_inputs["embodiment_id"]
    states, x = flow_inputs["states"].double(), flow_inputs["noise"].double()
    mask = given if mask_padding else None  # the key mask the equations apply

    t_buckets = torch.tensor([0, 250, 990])
    features = head.process_backbone(feats, mask)
    ours = head.velocity(x, t_buckets, features, mask, head.state_encoder(states[:, None], ids), ids)
    expected = head_velocity(head, p, feats, mask, states, x, t_buckets, ids, tiny_flow)
    assert torch.allclose(ours, expected, atol=TOL)

    # get_action: Euler from t=0 with buckets int(k / N * 1000), dt = 1 / N
    steps = tiny_flow["num_inference_timesteps"]
    sample = x.clone()
    for k in range(steps):
        bucket = torch.full((3,), int(k / steps * 1000))
        sample = sample + head_velocity(head, p, feats, mask, states, sample, bucket, ids, tiny_flow) / steps
    predicted = head.predict_action(feats, states, given, noise=x, embodiment_id=ids)
    assert torch.allclose(predicted, sample, atol=TOL)


def test_training_loss_matches_equations(tiny_flow, flow_inputs):
    """x_t = (1 - t) noise + t actions, target actions - noise, masked MSE over valid steps."""
    torch.manual_seed(0)
    head = FlowMatchingHead(**tiny_flow).double().train()  # dropout 0: train mode changes nothing else
    p = dict(head.state_dict())
    feats, given = flow_inputs["input_features"].double(), flow_inputs["attention_mask"]
    mask = None  # GR00T attends to every backbone position (mask_padding: false)
    states, noise, ids = flow_inputs["states"].double(), flow_inputs["noise"].double(), flow_inputs["embodiment_id"]
    actions = torch.randn_like(noise)
    action_masks = torch.tensor([[True] * 4, [True, True, True, False], [True, False, False, False]])
    t = torch.tensor([0.1, 0.5, 0.97], dtype=torch.float64)
    out = head(feats, states, given, actions, action_masks, noise=noise, flow_time=t, embodiment_id=ids)

    actions = actions * action_masks[..., None]  # ours: padded steps are zeroed before noising
    x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * actions
    buckets = (t * 1000).long()
    v = head_velocity(head, p, feats, mask, states, x_t, buckets, ids, tiny_flow)
    err = ((v - (actions - noise)) ** 2) * action_masks[..., None]
    expected = err.sum() / (action_masks.sum() * actions.shape[-1])
    assert torch.allclose(out["loss"], expected, atol=TOL)
    assert torch.allclose(out["pred_actions"], x_t + (1 - t[:, None, None]) * v, atol=TOL)
