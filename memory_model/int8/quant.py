"""`QuantViT`: a subnet's int8 weights ("flash") and activation scales, numpy only.

Quantisation scheme: weights symmetric int8 per output channel; biases int32 at the
accumulator's scale (input scale x weight scale); activations symmetric int8 per tensor
(scale = calibrated |max| / 127, zero point 0); the input image is uint8 with scale 1/255
(the float model sees ``image / 255``); attention probabilities are uint8 with scale 1/255.
The position embedding is int8 at the token embedding's scale; the class-token row is
``cls_token + pos_embed[0]`` quantised the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from memory_model.int8.intops import layernorm_consts
from search_space.config import SubnetConfig

IMAGE_SCALE = 1.0 / 255
PROB_SCALE = 1.0 / 255


@dataclass(frozen=True)
class QuantViT:
    """An int8 subnet: ``flash`` holds every constant, ``act_scale`` every tensor's scale."""

    cfg: SubnetConfig
    flash: dict[str, np.ndarray]
    act_scale: dict[str, float]


def linear_inputs(cfg: SubnetConfig) -> dict[str, str]:
    """Module path of every linear (factors split) -> name of its input activation."""
    out = {"head": "pool"}
    for l in range(cfg.depth):  # noqa: E741
        pre = f"blocks.{l}"
        for kind, sub, src, mid in (
            ("qkv", "attn", "ln1", "qkv_z"),
            ("proj", "attn", "attn_out", "proj_z"),
            ("fc1", "mlp", "ln2", "fc1_z"),
            ("fc2", "mlp", "act", "fc2_z"),
        ):
            path = f"{pre}.{sub}.{kind}"
            if cfg.linear_rank(kind, l) is None:
                out[path] = f"{pre}.{src}"
            else:
                out[f"{path}.v"], out[f"{path}.u"] = f"{pre}.{src}", f"{pre}.{mid}"
    return out


def _quant_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = w.reshape(w.shape[0], -1)
    scale = np.maximum(np.abs(flat).max(axis=1), 1e-12) / 127.0
    q = np.clip(np.round(flat / scale[:, None]), -127, 127).astype(np.int8)
    return q.reshape(w.shape), scale


def _quant_act(x: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.round(x / scale), -127, 127).astype(np.int8)


def quantize_vit(cfg: SubnetConfig, params: dict[str, np.ndarray], act_absmax: dict[str, float]) -> QuantViT:
    """Quantise float ``params`` (a `StaticViT` state dict as numpy) with calibrated
    per-tensor |max| of every activation named by the ``mcu`` schedule."""
    if cfg.rel_pos:
        raise ConfigError("the int8 executor does not support rel_pos; use a subnet with rel_pos: false")
    scale = {k: max(float(v), 1e-8) / 127.0 for k, v in act_absmax.items()}
    scale["image"], scale["probs"] = IMAGE_SCALE, PROB_SCALE
    flash: dict[str, np.ndarray] = {}
    for path, src in linear_inputs(cfg).items():
        w, s_w = _quant_weight(params[f"{path}.weight"])
        flash[f"{path}.w"], flash[f"{path}.w_scale"] = w, s_w
        if f"{path}.bias" in params:
            flash[f"{path}.b"] = np.round(params[f"{path}.bias"] / (scale[src] * s_w)).astype(np.int32)
    w = params["patch_embed.proj.weight"].transpose(0, 2, 3, 1)  # (E, P, P, C): pixel order
    w, s_w = _quant_weight(w)
    flash["patch_embed.w"], flash["patch_embed.w_scale"] = w, s_w
    flash["patch_embed.b"] = np.round(params["patch_embed.proj.bias"] / (IMAGE_SCALE * s_w)).astype(np.int32)
    e, off = cfg.embed_dim, int(cfg.has_cls_token)
    pos = params["pos_embed"][0] if cfg.abs_pos else np.zeros((cfg.num_tokens, e))
    flash["pos_q"] = _quant_act(pos[off:], scale["x0"])
    if cfg.has_cls_token:
        flash["cls_q"] = _quant_act(params["cls_token"].reshape(e) + pos[0], scale["x0"])
    norms = {"norm": "pool" if cfg.pool == "cls" else "norm"}
    for l in range(cfg.depth):  # noqa: E741
        norms[f"blocks.{l}.norm1"], norms[f"blocks.{l}.norm2"] = f"blocks.{l}.ln1", f"blocks.{l}.ln2"
    for path, out in norms.items():
        flash[f"{path}.G"], flash[f"{path}.B"] = layernorm_consts(
            params[f"{path}.weight"], params[f"{path}.bias"], scale[out]
        )
    return QuantViT(cfg, flash, scale)


def activation_names(cfg: SubnetConfig) -> list[str]:
    """Every activation whose scale the executor needs (besides image and probs)."""
    names = ["x0", "pool"] + ([] if cfg.pool == "cls" else ["norm"])
    for l in range(cfg.depth):  # noqa: E741
        pre = f"blocks.{l}"
        names += [f"{pre}.{n}" for n in ("ln1", "q", "k", "v", "attn_out", "x_mid", "ln2", "act", "x_out")]
        if cfg.attn_rank_ratio is not None:
            names += [f"{pre}.qkv_z", f"{pre}.proj_z"]
        if cfg.rank_ratio is not None:
            names += [f"{pre}.fc1_z", f"{pre}.fc2_z"]
    return names


def random_params(cfg: SubnetConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random float parameters under `StaticViT`'s state-dict names and shapes (for
    memory checks that need real int8 inference but no trained model)."""
    e, c, p = cfg.embed_dim, cfg.in_chans, cfg.patch_size
    out: dict[str, np.ndarray] = {}

    def linear(path: str, d_in: int, d_out: int, bias: bool) -> None:
        out[f"{path}.weight"] = rng.normal(0, d_in**-0.5, (d_out, d_in))
        if bias:
            out[f"{path}.bias"] = rng.normal(0, 0.1, d_out)

    out["patch_embed.proj.weight"] = rng.normal(0, (c * p * p) ** -0.5, (e, c, p, p))
    out["patch_embed.proj.bias"] = rng.normal(0, 0.1, e)
    if cfg.has_cls_token:
        out["cls_token"] = rng.normal(0, 0.5, (1, 1, e))
    if cfg.abs_pos:
        out["pos_embed"] = rng.normal(0, 0.5, (1, cfg.num_tokens, e))
    for l in range(cfg.depth):  # noqa: E741
        pre = f"blocks.{l}"
        for norm in ("norm1", "norm2"):
            out[f"{pre}.{norm}.weight"] = 1 + rng.normal(0, 0.1, e)
            out[f"{pre}.{norm}.bias"] = rng.normal(0, 0.1, e)
        for kind, sub in (("qkv", "attn"), ("proj", "attn"), ("fc1", "mlp"), ("fc2", "mlp")):
            e_, q, m = e, cfg.qkv_dim(l), cfg.mlp_hidden(l)
            d_in, d_out = {"qkv": (e_, 3 * q), "proj": (q, e_), "fc1": (e_, m), "fc2": (m, e_)}[kind]
            bias = cfg.qkv_bias if kind == "qkv" else True
            rank, path = cfg.linear_rank(kind, l), f"{pre}.{sub}.{kind}"
            if rank is None:
                linear(path, d_in, d_out, bias)
            else:
                linear(f"{path}.v", d_in, rank, False)
                linear(f"{path}.u", rank, d_out, bias)
    out["norm.weight"], out["norm.bias"] = 1 + rng.normal(0, 0.1, e), rng.normal(0, 0.1, e)
    linear("head", e, cfg.num_classes, True)
    return out


def random_quant_vit(cfg: SubnetConfig, rng: np.random.Generator) -> QuantViT:
    """A `QuantViT` with random weights and random activation ranges (numpy only)."""
    absmax = {name: float(rng.uniform(1.0, 4.0)) for name in activation_names(cfg)}
    return quantize_vit(cfg, random_params(cfg, rng), absmax)
