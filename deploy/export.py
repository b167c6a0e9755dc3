"""Static subnet -> int8 .tflite (litert-torch + ai-edge-quantizer, static int8 recipe).

The exported graph takes NHWC float input (batch 1), so the converter needs no input
transpose; the quantizer's static ``wi8_ai8`` recipe gives int8 weights (per-channel) and int8
activations calibrated on a few real images (the embedded sklearn digits, resized to the
model's input and replicated over its channels). The MLP activation must be one TFLM has:
``relu`` or ``gelu_sigmoid`` (x·σ(1.702x)); exact GELU is refused.

Needs the optional deployment stack (``requirements-deploy.txt``, its own venv).

    python -m deploy.export --subnet subnet.yaml --out model.tflite
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.errors import ConfigError
from common.strict_yaml import read_yaml
from search_space.config import SubnetConfig
from search_space.static import StaticViT

log = logging.getLogger(__name__)
TFLM_ACTS = ("relu", "gelu_sigmoid")
NUM_CALIBRATION = 8


class NHWCInput(nn.Module):
    """Wrap an NCHW image model so it takes (B, H, W, C) input like TF-Lite expects."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def calibration_images(cfg: SubnetConfig, count: int = NUM_CALIBRATION, seed: int = 0) -> np.ndarray:
    """``count`` real digit images as float32 NHWC (count, img, img, in_chans), roughly N(0, 1)."""
    from sklearn.datasets import load_digits

    digits = load_digits().images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    rng = np.random.default_rng(seed)
    picked = torch.from_numpy(digits[rng.choice(len(digits), size=count, replace=False)])[:, None]
    resized = nn.functional.interpolate(picked, size=(cfg.img_size, cfg.img_size), mode="bilinear")
    images = (resized - 0.5) / 0.5  # (count, 1, H, W)
    return images.repeat(1, cfg.in_chans, 1, 1).permute(0, 2, 3, 1).contiguous().numpy()


def check_exportable(cfg: SubnetConfig) -> None:
    """Refuse configs TFLM cannot run as converted (exact GELU, relative position)."""
    if cfg.act not in TFLM_ACTS:
        raise ConfigError(f"act '{cfg.act}' has no TF-Lite Micro kernel; set act to one of {TFLM_ACTS}")
    if cfg.rel_pos:
        raise ConfigError("rel_pos gathers (N, N, d) tables at run time; export subnets with rel_pos: false")


def to_float_tflite(model: nn.Module, cfg: SubnetConfig, path: Path) -> None:
    """Convert the float model (NHWC input, batch 1) to a float .tflite at ``path``."""
    import litert_torch

    example = torch.from_numpy(calibration_images(cfg, count=1))
    edge_model = litert_torch.convert(NHWCInput(model).eval(), (example,))
    edge_model.export(str(path))


def quantize_int8(float_path: Path, calibration: np.ndarray) -> bytes:
    """Static int8 quantisation (int8 weights and activations) calibrated on ``calibration``."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    signatures = Interpreter(model_path=str(float_path)).get_signature_list()
    signature = next(iter(signatures))
    input_name = signatures[signature]["inputs"][0]
    samples = [{input_name: image[None]} for image in calibration]
    qt = quantizer.Quantizer(str(float_path))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    calibrated = qt.calibrate({signature: samples}, num_threads=1)
    return inline_buffers(bytes(qt.quantize(calibrated, enable_progress_report=False).quantized_model))


def inline_buffers(model_bytes: bytes) -> bytes:
    """Re-serialise a .tflite with every constant stored inside the flatbuffer.

    ai-edge-quantizer appends the data of models with >= 256 KB of constants after the
    flatbuffer (buffer offset/size); TF-Lite Micro then places those weights in the arena
    head instead of reading them from flash. Inline buffers are what a microcontroller build
    embeds, so every export goes through this.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def export_int8(
    model: nn.Module,
    cfg: SubnetConfig,
    out_path: str | Path | None = None,
    calibration: np.ndarray | None = None,
) -> bytes:
    """Export a static subnet to an int8 .tflite; returns the model bytes (also written if asked)."""
    check_exportable(cfg)
    calibration = calibration_images(cfg) if calibration is None else calibration
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.tflite"
        to_float_tflite(model.eval(), cfg, float_path)
        model_bytes = quantize_int8(float_path, calibration)
    if out_path is not None:
        Path(out_path).write_bytes(model_bytes)
    return model_bytes


def randomize_affine(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give LayerNorm affines and all biases non-trivial values, as a trained model has.

    A freshly initialised model has LayerNorm 1/0 and zero biases, which the converter folds
    away; a trained one keeps them, so memory and flash checks export this form.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor) and isinstance(m, (nn.LayerNorm, nn.Linear, nn.Conv2d)):
                bias.copy_(0.1 * torch.randn(bias.shape, generator=gen))
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Export a subnet (YAML SubnetConfig) to an int8 .tflite file."
    )
    parser.add_argument("--subnet", required=True, help="YAML file with one SubnetConfig mapping")
    parser.add_argument("--checkpoint", help="state_dict (.pt) of the StaticViT; random weights if omitted")
    parser.add_argument("--out", required=True, help="output .tflite path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = SubnetConfig.from_dict(read_yaml(args.subnet, "subnet"))
        model = StaticViT(cfg)
        if args.checkpoint:
            state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("model", state))
        else:
            randomize_affine(model)
        size = len(export_int8(model, cfg, args.out))
    except ConfigError as err:
        parser.exit(2, f"error: {err}\n")
    log.info("wrote %s (%d bytes)", args.out, size)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
