"""MCUFormer's published peak-memory formula (``paper`` schedule).

    peak = max over FC layers l of  weight_bytes(l) + max(N * d_in(l), N * d_out(l))

int8 (one byte per weight and activation), batch 1, N = tokens (patches + class token).

Choices made explicit here (the paper leaves them open):

* FC layers are the transformer blocks' linears: ``qkv`` (E -> 3 * 64h), ``proj``
  (64h -> E), ``fc1`` (E -> M), ``fc2`` (M -> E). A factorised (low-rank) linear counts as
  its two factor layers, ``v`` (d_in -> r) and ``u`` (r -> d_out), each with its own term.
* Weight bytes = the int8 weight matrix d_in * d_out only; biases (int32) are not counted,
  as in the paper's h_f * w_f.
* The patch-embedding convolution, the classifier head, LayerNorm/softmax buffers, the
  attention scores and the residual stream are not in the formula (the ``mcu`` schedule
  counts all of them).
"""

from __future__ import annotations

from memory_model.report import MemoryReport, OpMemory
from search_space.config import SubnetConfig


def fc_layers(cfg: SubnetConfig, layer: int) -> list[tuple[str, int, int]]:
    """The FC layers of block ``layer`` as (name, d_in, d_out), factor layers split."""
    e, q, m = cfg.embed_dim, cfg.qkv_dim(layer), cfg.mlp_hidden(layer)
    out: list[tuple[str, int, int]] = []
    for kind, d_in, d_out in (("qkv", e, 3 * q), ("proj", q, e), ("fc1", e, m), ("fc2", m, e)):
        rank = cfg.linear_rank(kind, layer)
        name = f"blocks.{layer}.{kind}"
        if rank is None:
            out.append((name, d_in, d_out))
        else:
            out += [(f"{name}.v", d_in, rank), (f"{name}.u", rank, d_out)]
    return out


def paper_report(cfg: SubnetConfig) -> MemoryReport:
    """The paper's peak with one op per FC layer (weights + larger of input/output)."""
    n = cfg.num_tokens
    ops = []
    for layer in range(cfg.depth):
        for name, d_in, d_out in fc_layers(cfg, layer):
            live = {"weights": d_in * d_out, "activation": n * max(d_in, d_out)}
            ops.append(OpMemory(name, live))
    peak = max(op.total_bytes for op in ops)
    return MemoryReport("paper", peak, tuple(ops))


def paper_peak_bytes(cfg: SubnetConfig) -> int:
    """The paper's peak in bytes (no breakdown)."""
    n = cfg.num_tokens
    return max(
        d_in * d_out + n * max(d_in, d_out)
        for layer in range(cfg.depth)
        for _, d_in, d_out in fc_layers(cfg, layer)
    )
