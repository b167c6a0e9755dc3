"""What the generator compiles: a subnet config and its int8 quantisation (`QuantViT`).

Inputs: the search's output directory (``best_subnet.yaml`` + ``model.pt``, as
``evolution_search.py --finetune N`` / ``pipeline.py`` write them), a subnet YAML with a
``model.pt`` state dict, or a subnet YAML with seeded random weights (for tests and tables).
Weights are checked against the subnet before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from common.errors import ConfigError
from memory_model.int8.quant import QuantViT, random_quant_vit
from search_space.config import SubnetConfig

CALIB_IMAGES = 256


def load_subnet(path: Path) -> SubnetConfig:
    """A subnet YAML (e.g. ``best_subnet.yaml``) as a `SubnetConfig`."""
    if not path.is_file():
        raise ConfigError(f"subnet file {path} does not exist; pass a subnet YAML such as best_subnet.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    return SubnetConfig.from_dict(data)


def search_dir_files(search_dir: Path) -> tuple[Path, Path]:
    """(best_subnet.yaml, model.pt) of a search output directory."""
    cfg_path, weights = search_dir / "best_subnet.yaml", search_dir / "model.pt"
    if not (cfg_path.is_file() and weights.is_file()):
        raise ConfigError(
            f"{search_dir} holds no exported subnet (best_subnet.yaml + model.pt); run "
            "`python pipeline.py --budget 320KB` or `evolution_search.py --finetune N` first"
        )
    return cfg_path, weights


def load_float_model(cfg: SubnetConfig, weights: Path):
    """`StaticViT(cfg)` with the state dict in ``weights``; weights of another subnet are refused."""
    import torch

    from search_space.static import StaticViT

    if not weights.is_file():
        raise ConfigError(f"weights file {weights} does not exist")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(f"cannot read weights {weights}: {type(err).__name__}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    model = StaticViT(cfg)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    for key, shape in want.items():
        if got.get(key) != shape:
            have = "missing" if key not in got else f"shape {got[key]}"
            raise ConfigError(
                f"weights {weights} are not those of subnet {cfg.short()}: '{key}' is {have}, the subnet "
                f"needs {shape}; pass the model.pt written with this best_subnet.yaml"
            )
    extra = sorted(set(got) - set(want))
    if extra:
        raise ConfigError(
            f"weights {weights} are not those of subnet {cfg.short()}: unexpected '{extra[0]}'; pass the "
            "model.pt written with this best_subnet.yaml"
        )
    model.load_state_dict(state)
    return model.eval()


def calibration_images(cfg: SubnetConfig, n: int = CALIB_IMAGES) -> np.ndarray:
    from training.digits import load_digits_split

    return load_digits_split("train", cfg.img_size)[0][:n]


def quantize_model(model, n_calib: int = CALIB_IMAGES) -> QuantViT:
    """Calibrate on digits training images and quantise, as the numpy executor's users do."""
    from memory_model.int8.calibrate import quantize_static_vit

    return quantize_static_vit(model, calibration_images(model.cfg, n_calib))


def random_model(cfg: SubnetConfig, seed: int) -> QuantViT:
    return random_quant_vit(cfg, np.random.default_rng(seed))
