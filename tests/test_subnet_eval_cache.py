"""The search's split cache: uint8 pixels in host memory (a quarter of float32), normalised per
batch into exactly the floats the eval loader yields, so subnet top-1 is unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from search.subnet.evaluator import SupernetEvaluator
from search_space import SearchSpace
from search_space.supernet import Supernet
from tests.test_evolution import SEARCH_SPACE
from training.checkpoint import save_checkpoint
from training.config import load_config
from training.data import build_loaders
from training.engine import evaluate

SPACE = {**SEARCH_SPACE, "depth": [1, 2]}


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory) -> SupernetEvaluator:
    """A tiny supernet checkpoint on 32 px digits with ImageNet's mean/std and a resize
    (crop_pct 0.875), so normalisation rounds as it does on real data. The weights are a seeded
    initialisation: exactness of the inputs, not accuracy, is under test."""
    root = tmp_path_factory.mktemp("cache")
    cfg = {
        "space": SPACE,
        "data": {"cache_dir": str(root / "data"), "eval_batch_size": 64, "crop_pct": 0.875},
        "log": {"output": str(root / "run"), "progress": False},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(cfg))
    train_cfg = load_config(root / "c.yaml")
    torch.manual_seed(0)
    space = SearchSpace.from_dict(SPACE)
    path = root / "supernet.pth"
    save_checkpoint(
        path, space=space, config=train_cfg.to_dict(), epoch=0, model=Supernet(space).state_dict()
    )
    return SupernetEvaluator(path, "cpu")


def _float_holdout(ev: SupernetEvaluator) -> torch.utils.data.DataLoader:
    """The plain eval loader: normalised float32 batches straight from timm."""
    return build_loaders(ev.train_cfg.data, ev.space.img_size, ev.space.num_classes).holdout


def test_cache_holds_uint8_pixels_in_a_quarter_of_the_float_memory(evaluator: SupernetEvaluator) -> None:
    cache = evaluator._split("holdout")
    float_batches = list(_float_holdout(evaluator))
    assert len(cache) == len(float_batches) == 3  # 180 images in batches of 64
    assert all(x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32) for x, _ in cache.batches)
    float_bytes = sum(x.nbytes + y.nbytes for x, y in float_batches)
    assert float_batches[0][0].dtype == torch.float32
    assert cache.nbytes <= float_bytes / 4
    assert sum(len(y) for _, y in cache.batches) == 180


def test_cached_batches_normalise_to_the_loaders_floats_bit_for_bit(evaluator: SupernetEvaluator) -> None:
    cache = evaluator._split("holdout")
    mean = evaluator.train_cfg.data.mean
    assert tuple(mean) != (0.0, 0.0, 0.0)  # a normalisation that rounds
    for (xf, yf), (xc, yc) in zip(_float_holdout(evaluator), cache, strict=True):
        assert xc.dtype == xf.dtype == torch.float32 and torch.equal(xc, xf)
        assert yc.dtype == yf.dtype and torch.equal(yc, yf)


def test_subnet_top1_and_logits_equal_the_float_loader_exactly(evaluator: SupernetEvaluator) -> None:
    space, loader, cpu = evaluator.space, _float_holdout(evaluator), torch.device("cpu")
    rng = np.random.default_rng(3)
    subnets = {str(i): c for i, c in enumerate([space.max_config(), space.min_config(), space.sample(rng)])}
    assert {k: evaluator.holdout_top1(c) for k, c in subnets.items()} == evaluate(
        evaluator.supernet, loader, subnets, cpu
    )
    net = evaluator.supernet
    with torch.no_grad():
        for cfg in subnets.values():
            net.set_active(cfg)
            for (xf, _), (xc, _) in zip(loader, evaluator._split("holdout"), strict=True):
                assert torch.equal(net(xc), net(xf))
    test_loader = build_loaders(evaluator.train_cfg.data, space.img_size, space.num_classes).test
    assert evaluator.test_top1(subnets["0"]) == evaluate(net, test_loader, {"s": subnets["0"]}, cpu)["s"]
