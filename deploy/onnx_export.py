"""Static subnet -> ONNX (``torch.onnx.export``, dynamo exporter) checked with onnxruntime.

Layout: the graph takes ``image`` in NCHW float32 (batch, in_chans, img_size, img_size), the
PyTorch/timm convention, with the same normalisation the model was trained with (the embedded
digits configs feed pixel / 255), and returns ``logits`` (batch, num_classes). The batch axis is
dynamic. ``layout="nhwc"`` wraps the model so the graph takes (batch, H, W, C) instead, as the
int8 .tflite export does.

Needs ``onnx``, ``onnxscript`` (the exporter) and ``onnxruntime`` (the check), all in
requirements.txt.

    python -m deploy.onnx_export --subnet best_subnet.yaml --checkpoint finetune/checkpoint.pth --out model.onnx
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.errors import ConfigError
from common.strict_yaml import read_yaml
from search_space.config import SubnetConfig
from search_space.static import StaticViT

log = logging.getLogger(__name__)
LAYOUTS = ("nchw", "nhwc")
QUIET_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export")


class _NHWC(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def input_shape(cfg: SubnetConfig, batch: int = 1, layout: str = "nchw") -> tuple[int, int, int, int]:
    s, c = cfg.img_size, cfg.in_chans
    return (batch, c, s, s) if layout == "nchw" else (batch, s, s, c)


def export_onnx(model: nn.Module, cfg: SubnetConfig, path: str | Path, layout: str = "nchw") -> Path:
    """Write ``model`` (a StaticViT of ``cfg``) to ``path`` as ONNX with a dynamic batch axis."""
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = (_NHWC(model) if layout == "nhwc" else model).eval()
    example = torch.zeros(input_shape(cfg, 2, layout))
    tmp = path.with_name(f".{path.name}.tmp")
    for name in QUIET_LOGGERS:  # the exporter logs every graph rewrite at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):  # and prints its progress
        torch.onnx.export(
            net,
            (example,),
            str(tmp),
            dynamo=True,
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
        )
    tmp.replace(path)
    return path


def run_onnx(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Logits of an exported model under onnxruntime (CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images.astype(np.float32)})[0]


def max_abs_diff(
    model: nn.Module, cfg: SubnetConfig, path: str | Path, layout: str = "nchw", seed: int = 0
) -> float:
    """Largest |onnxruntime - PyTorch| logit difference on a few random images."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(input_shape(cfg, 3, "nchw"), generator=gen)
    with torch.no_grad():
        expected = model.eval()(images).numpy()
    feed = images.numpy() if layout == "nchw" else images.permute(0, 2, 3, 1).contiguous().numpy()
    return float(np.abs(run_onnx(path, feed) - expected).max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a subnet (YAML SubnetConfig) to ONNX and check it.")
    parser.add_argument("--subnet", required=True, help="YAML file with one SubnetConfig mapping")
    parser.add_argument(
        "--checkpoint",
        help="finetune checkpoint (or a state_dict .pt) of the StaticViT; random weights if omitted",
    )
    parser.add_argument("--out", required=True, help="output .onnx path")
    parser.add_argument("--layout", choices=LAYOUTS, default="nchw", help="input layout of the graph")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = SubnetConfig.from_dict(read_yaml(args.subnet, "subnet"))
        model = StaticViT(cfg)
        if args.checkpoint:
            if not Path(args.checkpoint).is_file():
                raise ConfigError(f"checkpoint {args.checkpoint} does not exist")
            state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
            model.load_state_dict(state.get("model", state))
    except ConfigError as err:
        parser.exit(2, f"error: {err}\n")
    export_onnx(model, cfg, args.out, args.layout)
    log.info(
        "wrote %s; max |onnxruntime - torch| = %.2e",
        args.out,
        max_abs_diff(model, cfg, args.out, args.layout),
    )


if __name__ == "__main__":
    main()
