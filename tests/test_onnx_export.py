"""Export of a static subnet: onnxruntime gives PyTorch's logits (NCHW and NHWC, any batch); the
int8 .tflite arena is measured beside the estimates, or skipped with a clear reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.finetune import DEPLOY_MODULES, ONNX_MODULES, export_tflite, missing_modules, save_state_dict
from deploy.onnx_export import export_onnx, main, max_abs_diff, run_onnx
from memory_model import peak_sram
from search_space.config import SubnetConfig
from search_space.static import StaticViT

needs_onnx = pytest.mark.skipif(
    bool(missing_modules(ONNX_MODULES)), reason="needs onnx, onnxscript, onnxruntime (requirements.txt)"
)
CFG = SubnetConfig(
    embed_dim=24, depth=2, num_heads=(2, 1), mlp_ratio=(2.0, 1.0), patch_size=8, img_size=32, num_classes=10,
    head_dim=8, rank_ratio=0.5, pool="avg", act="gelu_sigmoid",
)  # fmt: skip


def trained_like(cfg: SubnetConfig) -> StaticViT:
    """Random weights with non-trivial LayerNorm affines and biases, as a trained model has."""
    torch.manual_seed(0)
    model = StaticViT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@needs_onnx
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_onnx_matches_pytorch(tmp_path: Path, layout: str) -> None:
    model = trained_like(CFG)
    path = export_onnx(model, CFG, tmp_path / "m.onnx", layout)
    assert max_abs_diff(model, CFG, path, layout) < 1e-4
    images = torch.rand(5, 3, 32, 32)  # another batch size than the export example
    feed = images.numpy() if layout == "nchw" else images.permute(0, 2, 3, 1).numpy()
    got = run_onnx(path, feed)
    assert got.shape == (5, 10)
    np.testing.assert_allclose(got, model(images).detach().numpy(), atol=1e-4, rtol=1e-4)
    assert not list(tmp_path.glob(".*tmp")), "the export is written atomically"


@needs_onnx
def test_cli_exports_saved_weights(tmp_path: Path) -> None:
    import yaml

    model = trained_like(CFG)
    (tmp_path / "subnet.yaml").write_text(yaml.safe_dump(CFG.to_dict()))
    weights = save_state_dict(model, tmp_path / "model.pt")
    main(
        [
            "--subnet",
            str(tmp_path / "subnet.yaml"),
            "--checkpoint",
            str(weights),
            "--out",
            str(tmp_path / "m.onnx"),
        ]
    )
    x = torch.rand(2, 3, 32, 32)
    np.testing.assert_allclose(
        run_onnx(tmp_path / "m.onnx", x.numpy()), model(x).detach().numpy(), atol=1e-4, rtol=1e-4
    )
    with pytest.raises(SystemExit) as exc:
        main(["--subnet", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "x.onnx")])
    assert exc.value.code == 2 and not (tmp_path / "x.onnx").exists()


def test_tflite_step_says_what_it_needs(tmp_path: Path) -> None:
    missing = missing_modules(DEPLOY_MODULES)
    if not missing:
        pytest.skip("the deployment stack is installed here")
    result = export_tflite(trained_like(CFG), CFG, tmp_path / "m.tflite")
    assert "requirements-deploy.txt" in result["skipped"] and missing[0] in result["skipped"]
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.deploy
@pytest.mark.skipif(bool(missing_modules(DEPLOY_MODULES)), reason="needs requirements-deploy.txt")
def test_tflite_arena_measured_beside_estimate(tmp_path: Path) -> None:
    result = export_tflite(trained_like(CFG), CFG, tmp_path / "m.tflite")
    assert (tmp_path / "m.tflite").stat().st_size == result["size_bytes"]
    estimate = peak_sram(CFG, "tflm")  # the whole arena, with the head beside it
    assert (
        abs(result["arena_head_bytes"] - estimate.options["head_bytes"]) <= 0.02 * result["arena_head_bytes"]
    )
    # the arena the model needs is the smallest it runs in (for a model this small, more than the
    # head + tail TF-Lite Micro prints); the estimate covers it, with little to spare
    from deploy.tflm_measure import smallest_arena_bytes

    smallest = smallest_arena_bytes(tmp_path / "m.tflite", result["arena_total_bytes"])
    assert smallest <= estimate.peak_bytes <= 1.02 * smallest
