"""The int8 executor on a trained, searched subnet: top-1 agreement with the float model on the
digits test split, and its speed next to the float model's (both single-image, this machine).

The subnet is the one ``pipeline.py`` / ``evolution_search.py --finetune N`` exported
(``best_subnet.yaml`` + ``model.pt`` in the search directory). The executor is a numpy
reference of the ``mcu`` schedule's int8 operators inside a byte arena, not an MCU kernel
library, so its speed says what checking costs, not what a microcontroller runs at.

    python bench/bench_int8.py [--search runs/pipeline/search] [--images 360] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from common.files import atomic_write_text
from memory_model.int8.calibrate import quantize_static_vit, to_model_input
from memory_model.int8.executor import run_int8
from memory_model.schedules import peak_sram
from search_space.config import SubnetConfig
from search_space.static import StaticViT
from training.digits import load_digits_split


def load_searched_model(search_dir: Path) -> tuple[SubnetConfig, StaticViT]:
    """The exported subnet of a search directory (config + finetuned weights)."""
    cfg_path, weights = search_dir / "best_subnet.yaml", search_dir / "model.pt"
    if not (cfg_path.is_file() and weights.is_file()):
        raise FileNotFoundError(
            f"{search_dir} holds no exported subnet (best_subnet.yaml + model.pt); run "
            "`python pipeline.py --budget 320KB` or `evolution_search.py --finetune N` first"
        )
    cfg = SubnetConfig.from_dict(yaml.safe_load(cfg_path.read_text()))
    model = StaticViT(cfg)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return cfg, model.eval()


def measure(search_dir: Path, n_images: int, n_calib: int) -> dict:
    cfg, model = load_searched_model(search_dir)
    train_x, _ = load_digits_split("train", cfg.img_size)
    test_x, test_y = load_digits_split("test", cfg.img_size)
    test_x, test_y = test_x[:n_images], test_y[:n_images]
    qmodel = quantize_static_vit(model, train_x[:n_calib])
    arena_bytes = peak_sram(cfg, "mcu").peak_bytes
    with torch.no_grad():
        t0 = time.perf_counter()
        ref = np.array([int(model(to_model_input(im[None])).argmax()) for im in test_x])
        float_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = np.array([int(run_int8(qmodel, im, arena_bytes=arena_bytes).logits.argmax()) for im in test_x])
    int8_s = time.perf_counter() - t0
    return {
        "subnet": cfg.short(),
        "images": len(test_x),
        "calibration_images": n_calib,
        "arena_bytes": arena_bytes,
        "float_top1": float((ref == test_y).mean() * 100),
        "int8_top1": float((got == test_y).mean() * 100),
        "agreement": float((got == ref).mean() * 100),
        "float_images_per_s": len(test_x) / float_s,
        "int8_images_per_s": len(test_x) / int8_s,
        "int8_over_float_time": int8_s / float_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--search", default="runs/pipeline/search", help="search output dir with model.pt")
    p.add_argument("--images", type=int, default=360, help="test images (the digits test split has 360)")
    p.add_argument("--calib", type=int, default=256, help="training images used for calibration")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        r = measure(Path(args.search), args.images, args.calib)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"subnet {r['subnet']}, {r['images']} digits test images, arena = mcu peak {r['arena_bytes']} B")
    print("| model | top-1 (%) | images/s |")
    print("|---|---|---|")
    print(f"| float (torch, 1 thread) | {r['float_top1']:.2f} | {r['float_images_per_s']:.1f} |")
    print(f"| int8 executor (numpy) | {r['int8_top1']:.2f} | {r['int8_images_per_s']:.1f} |")
    print(
        f"summary: int8 top-1 agrees with float on {r['agreement']:.2f}% of {r['images']} images; "
        f"the executor takes {r['int8_over_float_time']:.1f}x the float model's time"
    )
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
