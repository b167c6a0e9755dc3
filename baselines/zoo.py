"""The seed models and the resolutions they are measured at, built from timm.

Every model is built with ``pretrained=False`` (nothing downloads) and ``num_classes=10`` (the
embedded digits data). MobileOne is measured and trained after
``timm.utils.model.reparameterize_model`` (its deployed, single-branch form) and trained in
its multi-branch form. Resolutions are
the model's default plus MCU-sized ones where the architecture allows: EfficientFormer (v1)
has 7x7 attention biases tied to 224 px, so it only runs at 224; EfficientFormer-V2 takes the
image size at construction; MobileViT and MobileOne are resolution-agnostic. Large width
variants are profiled at the smallest resolution only (they are far from any MCU budget).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from common.files import atomic_write_text
from memory_model.profile import ProfileReport, profile_model

log = logging.getLogger("mcunas.baselines")
NUM_CLASSES = 10
PROFILE_VERSION = 2  # 2: whole TFLM arena (head + tail); bump when the profiler's rules change: cached results are recomputed
MCU_RES = (96, 128, 160)


@dataclass(frozen=True)
class BaselineSpec:
    """One timm model and the image sizes it is measured at."""

    name: str
    family: str
    resolutions: tuple[int, ...]
    default_res: int

    @property
    def reparameterize(self) -> bool:
        return self.family == "MobileOne"


def _spec(name: str, family: str, default: int, small: tuple[int, ...] = MCU_RES) -> BaselineSpec:
    return BaselineSpec(name, family, tuple(sorted({*small, default})), default)


ZOO: tuple[BaselineSpec, ...] = (
    _spec("efficientformer_l1", "EfficientFormer", 224, ()),
    _spec("efficientformerv2_s0", "EfficientFormerV2", 224),
    _spec("efficientformerv2_s1", "EfficientFormerV2", 224, (96,)),
    _spec("efficientformerv2_s2", "EfficientFormerV2", 224, (96,)),
    _spec("mobilevit_xxs", "MobileViT", 256),
    _spec("mobilevit_xs", "MobileViT", 256),
    _spec("mobilevit_s", "MobileViT", 256, (96,)),
    _spec("mobilevitv2_050", "MobileViTv2", 256),
    _spec("mobilevitv2_075", "MobileViTv2", 256, (96,)),
    _spec("mobilevitv2_100", "MobileViTv2", 256, (96,)),
    _spec("mobileone_s0", "MobileOne", 224),
    _spec("mobileone_s1", "MobileOne", 224, (96,)),
    _spec("mobileone_s2", "MobileOne", 224, (96,)),
)


def spec_for(name: str) -> BaselineSpec:
    for spec in ZOO:
        if spec.name == name:
            return spec
    raise KeyError(name)


def build_baseline(name: str, img_size: int, num_classes: int = NUM_CLASSES) -> nn.Module:
    """A freshly initialised timm model for ``img_size`` (not reparameterised)."""
    kwargs: dict[str, Any] = {"pretrained": False, "num_classes": num_classes}
    if name.startswith("efficientformerv2"):
        kwargs["img_size"] = img_size
    return timm.create_model(name, **kwargs)


def deployed_form(model: nn.Module) -> nn.Module:
    """The model as it is deployed: MobileOne's branches merged (no-op for other models)."""
    from timm.utils.model import reparameterize_model

    return reparameterize_model(model.eval())


def profile_baseline(name: str, img_size: int) -> ProfileReport:
    """Profile one model at one resolution (its deployed form)."""
    model = deployed_form(build_baseline(name, img_size))
    return profile_model(model, img_size, name=f"{name}@{img_size}")


def _cache_path(cache_dir: Path, name: str, img_size: int) -> Path:
    return cache_dir / f"{name}@{img_size}.json"


def profile_zoo(
    specs: tuple[BaselineSpec, ...] = ZOO, cache_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """Profile every (model, resolution); results are cached as JSON in ``cache_dir``."""
    rows = []
    cache = Path(cache_dir) if cache_dir is not None else None
    for spec in specs:
        for res in spec.resolutions:
            path = _cache_path(cache, spec.name, res) if cache is not None else None
            row = None
            if path is not None and path.is_file():
                row = json.loads(path.read_text())
                if row.get("profile_version") != PROFILE_VERSION:
                    row = None
            if row is None:
                torch.manual_seed(0)
                report = profile_baseline(spec.name, res)
                row = {
                    **report.to_dict(),
                    "model": spec.name,
                    "family": spec.family,
                    "img_size": res,
                    "profile_version": PROFILE_VERSION,
                }
                if path is not None:
                    atomic_write_text(path, json.dumps(row, indent=1))
                log.info("profiled %s@%d: peak %d B", spec.name, res, row["peak_bytes"])
            rows.append(row)
    return rows


def train_from_scratch(
    build: Any, img_size: int, train_cfg: Any, epochs: int, output: str | Path, describe: dict[str, Any]
) -> float | None:
    """Train ``build()`` from its random initialisation on the training config's data with the
    searched subnet's finetune recipe (``deploy.finetune.finetune_config``: same optimiser and
    schedule, ``epochs`` epochs); rerunning resumes. Returns test top-1 (%)."""
    from deploy.finetune import finetune_config
    from training.static_train import train_static

    cfg = finetune_config(train_cfg, epochs, output)

    def seeded() -> nn.Module:
        torch.manual_seed(train_cfg.seed)
        return build().train()

    summary = train_static(seeded, cfg, img_size=img_size, num_classes=NUM_CLASSES, describe=describe)
    top1 = summary.get("test_top1") or {}
    return float(next(iter(top1.values()))) if top1 else None


def train_baseline(name: str, img_size: int, train_cfg: Any, epochs: int, output: str | Path) -> float | None:
    """Train one baseline from scratch (:func:`train_from_scratch`). MobileOne trains in its
    multi-branch form (its merged deployed form has no batch norm left to train) and is
    evaluated in eval mode, where the two forms compute the same function."""
    return train_from_scratch(
        lambda: build_baseline(name, img_size),
        img_size,
        train_cfg,
        epochs,
        output,
        {"baseline": name, "img_size": img_size},
    )
