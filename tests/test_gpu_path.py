"""The GPU/cluster code path, exercised on CPU so it cannot rot unnoticed: device selection,
the AMP switch, and the fp16 + gradient-scaler training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.errors import ConfigError
from search_space import SearchSpace
from search_space.supernet import Supernet
from training.distributed import DistInfo, init_distributed
from training.engine import StepOptions, train_one_epoch
from training.recipe import amp_dtype


def test_amp_switch() -> None:
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert amp_dtype("auto", cuda) is torch.float16
    assert amp_dtype("auto", cpu) is None
    assert amp_dtype("bf16", cpu) is torch.bfloat16 and amp_dtype("bf16", cuda) is torch.bfloat16
    assert amp_dtype("off", cuda) is None
    with pytest.raises(ConfigError, match="CUDA"):
        amp_dtype("fp16", cpu)


def test_device_selection_without_gpu(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert info.device.type == expected and info.world_size == 1 and info.is_main
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            init_distributed("cuda")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_step_with_scaler(dtype: torch.dtype) -> None:
    """The step a GPU run takes (autocast + GradScaler for fp16), here on CPU autocast."""
    space = SearchSpace(
        embed_dim=[16], depth=[1], num_heads=[1], mlp_ratio=[2.0], patch_size=[8], img_size=16,
        num_classes=4, head_dim=8, pool="avg",
    )  # fmt: skip
    net = Supernet(space)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    scaler = torch.amp.GradScaler("cpu") if dtype is torch.float16 else None
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    data = [(torch.rand(4, 3, 16, 16), torch.randint(0, 4, (4,))) for _ in range(3)]
    rng = np.random.default_rng(0)
    meters = train_one_epoch(
        net, data, opt, torch.nn.CrossEntropyLoss(), lambda step: [space.sample(rng)], epoch=0,
        info=DistInfo(), opts=StepOptions(clip_grad=1.0, amp_dtype=dtype, scaler=scaler, progress=False),
    )  # fmt: skip
    assert np.isfinite(meters["loss"])
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert "blocks.0.mlp.fc1.weight" in changed and "head.weight" in changed
