"""Flash bytes of a subnet as an int8 .tflite stores its parameters, and its parameter count.

What is counted (what ``deploy.export``'s static int8 recipe writes, checked against exported
files in the deployment tests):

* weights of the patch convolution and every fully connected layer: int8, one byte each,
  quantised per output channel;
* biases: int32, four bytes each, per output channel;
* LayerNorm gamma/beta, the class token and the position embedding: int8 constants,
  per-tensor quantised; a LayerNorm followed by a dense FC with a bias is folded into that
  FC by the converter and stores nothing of its own;
* quantisation parameters as the flatbuffer stores them: a float32 scale and an int64 zero
  point (12 bytes) per channel of a per-channel tensor and per per-tensor constant.

Not counted: shape/permutation constants, a few scalar constants (epsilon, the attention
scale, 1.702), tensor/operator tables and tensor names (together a few KB per model), and the
interpreter code itself. AutoFormer's relative-position tables (``rel_pos``) count as int8
constants although the TFLM export refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass

from search_space.config import SubnetConfig

QPARAM_BYTES = 4 + 8  # float32 scale + int64 zero point per quantisation channel


@dataclass(frozen=True)
class FlashReport:
    """Flash bytes of the model's constants, by kind."""

    weights_int8_bytes: int
    biases_int32_bytes: int
    other_int8_bytes: int  # LayerNorm affine, cls token, position embedding, rel-pos tables
    quant_params_bytes: int
    parameter_count: int  # float parameters of StaticViT(cfg)

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_int8_bytes
            + self.biases_int32_bytes
            + self.other_int8_bytes
            + self.quant_params_bytes
        )


class _Counter:
    def __init__(self) -> None:
        self.weights = self.biases = self.other = self.qparams = self.params = 0

    def linear(self, d_in: int, d_out: int, bias: bool) -> None:
        self.weights += d_in * d_out
        self.params += d_in * d_out
        self.qparams += QPARAM_BYTES * d_out
        if bias:
            self.biases += 4 * d_out
            self.params += d_out
            self.qparams += QPARAM_BYTES * d_out

    def maybe_low_rank(self, d_in: int, d_out: int, rank: int | None, bias: bool) -> None:
        if rank is None:
            self.linear(d_in, d_out, bias)
        else:
            self.linear(d_in, rank, False)
            self.linear(rank, d_out, bias)

    def constant(self, count: int, folded: bool = False) -> None:
        """An int8 constant; ``folded`` ones are merged into the next FC and store nothing."""
        self.params += count
        if not folded:
            self.other += count
            self.qparams += QPARAM_BYTES


def flash_report(cfg: SubnetConfig) -> FlashReport:
    """Flash bytes of ``cfg`` exported as an int8 .tflite (see the module docstring)."""
    c = _Counter()
    e = cfg.embed_dim
    c.linear(cfg.in_chans * cfg.patch_size**2, e, True)  # patch conv: per-channel like an FC
    if cfg.has_cls_token:
        c.constant(e)
    if cfg.abs_pos:
        c.constant(cfg.num_tokens * e)
    for layer in range(cfg.depth):
        q, m = cfg.qkv_dim(layer), cfg.mlp_hidden(layer)
        fold1 = cfg.linear_rank("qkv", layer) is None and cfg.qkv_bias
        c.constant(e, fold1)  # norm1 gamma
        c.constant(e, fold1)  # norm1 beta
        c.maybe_low_rank(e, 3 * q, cfg.linear_rank("qkv", layer), cfg.qkv_bias)
        c.maybe_low_rank(q, e, cfg.linear_rank("proj", layer), True)
        if cfg.rel_pos:
            for _ in range(4):  # k and v, each a row and a column table
                c.constant((2 * cfg.rel_pos_max_distance + 2) * cfg.head_dim)
        fold2 = cfg.linear_rank("fc1", layer) is None
        c.constant(e, fold2)  # norm2 gamma
        c.constant(e, fold2)  # norm2 beta
        c.maybe_low_rank(e, m, cfg.linear_rank("fc1", layer), True)
        c.maybe_low_rank(m, e, cfg.linear_rank("fc2", layer), True)
    c.constant(e)
    c.constant(e)
    c.linear(e, cfg.num_classes, True)
    return FlashReport(c.weights, c.biases, c.other, c.qparams, c.params)


def flash_bytes(cfg: SubnetConfig) -> int:
    """Total flash bytes of the int8 parameters and their quantisation data."""
    return flash_report(cfg).total_bytes


def parameter_count(cfg: SubnetConfig) -> int:
    """Number of float parameters of ``StaticViT(cfg)`` (without building it)."""
    return flash_report(cfg).parameter_count
