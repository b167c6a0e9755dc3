"""The C operator library (deploy/mcu) measured: host bit-exactness against the numpy int8
executor on the digits test split for six subnets, host speed against the numpy executor and
torch, the searched subnet linked for stm32f746 and run under QEMU, and the patch sub-kernel /
square-root iteration trade-offs the paper names.

The searched subnet comes from ``--search DIR`` (``best_subnet.yaml`` + ``model.pt``); without
one, the pipeline's subnet of README (E48 D4 H2322 M2/4/3/2 P7 r0.6 on digits-tiny) is trained
from scratch for ``--train-epochs`` epochs here (its top-1 is then that of the short training).

    python bench/bench_mcu.py [--search runs/pipeline/search] [--images 360] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common.errors import ConfigError
from common.files import atomic_write_text
from deploy.mcu import GenOptions, Steps, deploy, get_board, toolchain_missing
from deploy.mcu.build import build_board, build_host, run_host, run_qemu
from deploy.mcu.codegen import generate
from deploy.mcu.run import numpy_logits
from deploy.mcu.source import load_float_model, load_subnet, quantize_model, search_dir_files
from memory_model.int8 import run_int8
from memory_model.int8.calibrate import to_model_input
from memory_model.int8.quant import random_quant_vit
from memory_model.mcu import mcu_peak_bytes
from memory_model.schedules import peak_sram
from search_space.config import SubnetConfig
from search_space.static import StaticViT
from training.digits import load_digits_split

PIPELINE = dict(embed_dim=48, depth=4, num_heads=(2, 3, 2, 2), mlp_ratio=(2.0, 4.0, 3.0, 2.0), patch_size=7)
DIGITS = dict(img_size=96, num_classes=10, head_dim=16, pool="avg", act="gelu_sigmoid")
# name -> (config, what it covers); the searched subnet is added in main()
SUBNETS = {
    "lowrank_mlp_attn_relu": (
        SubnetConfig(
            embed_dim=48,
            depth=2,
            num_heads=(2, 3),
            mlp_ratio=(2.0, 3.0),
            patch_size=8,
            rank_ratio=0.5,
            attn_rank_ratio=0.5,
            **{**DIGITS, "act": "relu"},
        ),
        "low-rank MLP + attention, relu, heads 2/3",
    ),
    "dense_cls_gelu_pad": (
        SubnetConfig(
            embed_dim=64,
            depth=2,
            num_heads=(4, 2),
            mlp_ratio=(2.0, 3.0),
            patch_size=7,
            **{**DIGITS, "pool": "cls", "act": "gelu"},
        ),
        "dense, cls, gelu, 96 px / 7 padded, heads 4/2",
    ),
    "avg_lowrank_p5": (
        SubnetConfig(
            embed_dim=48,
            depth=2,
            num_heads=(2, 2),
            mlp_ratio=(2.0, 2.0),
            patch_size=5,
            rank_ratio=0.6,
            **DIGITS,
        ),
        "avg, 96 px / 5 padded (400 tokens): fits mcu, not TFLM, at 256 KB",
    ),
    "attn_lowrank_only_nopos": (
        SubnetConfig(
            embed_dim=20,
            depth=2,
            num_heads=(1, 2),
            mlp_ratio=(2.0, 1.0),
            patch_size=5,
            img_size=21,
            num_classes=10,
            head_dim=8,
            attn_rank_ratio=0.3,
            abs_pos=False,
            qkv_bias=False,
        ),
        "low-rank attention only, no qkv bias, no position embedding, 21 px / 5",
    ),
    "tiny_avg_patch3": (
        SubnetConfig(
            embed_dim=16,
            depth=2,
            num_heads=(2, 1),
            mlp_ratio=(3.0, 2.0),
            patch_size=3,
            img_size=20,
            num_classes=10,
            head_dim=8,
            rank_ratio=1.0,
            pool="avg",
            act="gelu_sigmoid",
        ),
        "patch 3 < sub-kernel, 20 px / 3 padded",
    ),
}


def train_quick(cfg: SubnetConfig, epochs: int, seed: int = 0) -> StaticViT:
    """A few epochs of Adam from scratch on the digits training split (1 thread)."""
    torch.manual_seed(seed)
    x, y = load_digits_split("train", cfg.img_size)
    xt, yt = to_model_input(x), torch.from_numpy(y)
    model = StaticViT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    steps = epochs * -(-len(xt) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(32):
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def host_exactness(q, images: np.ndarray, tmp: Path) -> dict:
    """Both placements: host C logits vs the numpy executor (arena = analytic peak) on every image."""
    out = {"images": len(images)}
    for sram in (True, False):
        gen = generate(q, tmp / f"exact{int(sram)}", GenOptions(weights_in_sram=sram))
        logits, _ = run_host(build_host(gen.out_dir), images)
        key = "sram" if sram else "flash"
        out[f"{key}_equal"] = bool(np.array_equal(logits, numpy_logits(q, images, sram)))
        out[f"{key}_arena_bytes"] = gen.plan.arena_bytes
        out[f"{key}_arena_is_peak"] = gen.plan.arena_bytes == mcu_peak_bytes(q.cfg, sram)
    return out


def speed(q, model: StaticViT, images: np.ndarray, tmp: Path, n_numpy: int) -> dict:
    """images/s, one image at a time: C host build, numpy executor, torch fp32 (1 thread)."""
    gen = generate(q, tmp / "speed", GenOptions())
    _, c_s = run_host(build_host(gen.out_dir), images, repeat=3)
    t0 = time.perf_counter()
    for im in images[:n_numpy]:
        run_int8(q, im, True)
    np_s = time.perf_counter() - t0
    x = to_model_input(images)
    with torch.no_grad():
        model(x[:1])
        t0 = time.perf_counter()
        for i in range(len(x)):
            model(x[i : i + 1])
        torch_s = time.perf_counter() - t0
    return {
        "c_host": 3 * len(images) / c_s,
        "numpy_executor": n_numpy / np_s,
        "torch_fp32_batch1": len(images) / torch_s,
    }


def board_run(q, tmp: Path, name: str, board: str, images: np.ndarray, **gen_kw) -> dict:
    steps = Steps(host_images=images, check_images=len(images), qemu_images=images, board=get_board(board))
    report = deploy(q, tmp / name, GenOptions(**gen_kw), steps)
    report["tflm_estimate_bytes"] = peak_sram(q.cfg, "tflm").peak_bytes
    return report


def tradeoffs(q, test_x: np.ndarray, test_y: np.ndarray, tmp: Path, qemu_images: int) -> dict:
    """Sub-kernel side and square-root iterations: arena bytes, instructions, int8 top-1."""
    cfg, board = q.cfg, get_board("stm32f746")
    one = test_x[:qemu_images]
    rows = {"subkernel": [], "sqrt": []}
    for sub in (4, 2, cfg.patch_size):
        for sram in (True, False):
            gen = generate(q, tmp / f"sub{sub}_{int(sram)}", GenOptions(weights_in_sram=sram, subkernel=sub))
            logits, _ = run_host(build_host(gen.out_dir), test_x)
            run = run_qemu(build_board(gen.out_dir, board), one)
            patch = next(p.op for p in gen.plan.ops if p.op.kind == "patch_embed")
            rows["subkernel"].append(
                {"subkernel": sub, "weights_in_sram": sram, "arena_bytes": gen.plan.arena_bytes,
                 "patch_op_bytes": sum(patch.live.values()),
                 "instructions": int(np.median(run.instructions)), "top1": float((logits.argmax(1) == test_y).mean() * 100)}
            )  # fmt: skip
    for iters in (1, 2, 3, 4):
        gen = generate(q, tmp / f"sqrt{iters}", GenOptions(sqrt_iters=iters))
        logits, _ = run_host(build_host(gen.out_dir), test_x)
        run = run_qemu(build_board(gen.out_dir, board), one)
        rows["sqrt"].append(
            {"iterations": iters, "arena_bytes": gen.plan.arena_bytes, "instructions": int(np.median(run.instructions)),
             "top1": float((logits.argmax(1) == test_y).mean() * 100)}
        )  # fmt: skip
    return rows


def markdown(r: dict) -> str:
    kb = lambda n: f"{n / 1024:.1f}"  # noqa: E731
    sr = r["searched"]
    lines = [f"searched subnet: {sr['subnet']} ({sr['source']}; float top-1 {sr['float_top1']:.2f}%)", ""]
    lines += ["| subnet | covers | test images | C == numpy (weights in SRAM) | C == numpy (flash) | arena SRAM / flash mode (B) = peak |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, e in r.get("exactness", {}).items():
        lines.append(
            f"| {name} ({e['subnet']}) | {e['covers']} | {e['images']} | {e['sram_equal']} | {e['flash_equal']} | "
            f"{e['sram_arena_bytes']:,} / {e['flash_arena_bytes']:,} = {e['sram_arena_is_peak'] and e['flash_arena_is_peak']} |"
        )
    s = r["speed"]
    lines += ["", "| runtime (searched subnet, batch 1, 1 thread) | images/s |", "|---|---|"]
    lines += [f"| C operator library (host, -O2) | {s['c_host']:.1f} |", f"| numpy int8 executor | {s['numpy_executor']:.2f} |",
              f"| torch fp32 | {s['torch_fp32_batch1']:.1f} |"]  # fmt: skip
    lines += ["", "| board run | subnet | arena (B) = mcu peak | SRAM used / board (KB) | flash used / board (KB) | TFLM arena est. (KB) | instructions / inference | QEMU logits == host |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, b in r["board"].items():
        bd, qm = b["board"], b["qemu"]
        lines.append(
            f"| {name} on {bd['name']} | {b['subnet']} | {b['arena_bytes']:,} = {b['arena_bytes'] == b['analytic_mcu_peak_bytes']} | "
            f"{kb(bd['sram_bytes'])} / {kb(bd['board_sram_bytes'])} | {kb(bd['flash_bytes'])} / {kb(bd['board_flash_bytes'])} | "
            f"{kb(b['tflm_estimate_bytes'])} | {qm['instructions_per_inference']:,} | {qm['equal_to_host']} ({qm['images']} images) |"
        )
    t = r["tradeoffs"]
    lines += [
        "",
        "| patch sub-kernel | weights | patch-embedding op (B) | arena (B) | instructions / inference | int8 top-1 (%) |",
        "|---|---|---|---|---|---|",
    ]
    for row in t["subkernel"]:
        lines.append(f"| {row['subkernel']}x{row['subkernel']} | {'SRAM' if row['weights_in_sram'] else 'flash'} | "
                     f"{row['patch_op_bytes']:,} | {row['arena_bytes']:,} | {row['instructions']:,} | {row['top1']:.2f} |")  # fmt: skip
    lines += [
        "",
        "| LayerNorm sqrt iterations | arena (B) | instructions / inference | int8 top-1 (%) |",
        "|---|---|---|---|",
    ]
    for row in t["sqrt"]:
        lines.append(
            f"| {row['iterations']} | {row['arena_bytes']:,} | {row['instructions']:,} | {row['top1']:.2f} |"
        )
    lines += ["", "Instructions: SysTick ticks x 40 under QEMU -icount shift=0 (1 ns of virtual time per instruction, "
              "SysTick at the 25 MHz core clock); QEMU is not cycle-accurate."]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--search", help="search output dir (best_subnet.yaml + model.pt)")
    p.add_argument(
        "--train-epochs", type=int, default=10, help="without --search: epochs to train the pipeline subnet"
    )
    p.add_argument("--images", type=int, default=360, help="digits test images (the split has 360)")
    p.add_argument("--numpy-images", type=int, default=10, help="images timed on the numpy executor")
    p.add_argument("--qemu-images", type=int, default=2, help="images run under QEMU per build")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--skip-exactness", action="store_true", help="skip the six-subnet bit-exactness section")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if toolchain_missing():
            raise ConfigError(f"needs {', '.join(toolchain_missing())} (bash scripts/setup.sh as root)")
        if args.search:
            cfg_path, weights = search_dir_files(Path(args.search))
            cfg = load_subnet(cfg_path)
            model, source = load_float_model(cfg, weights), f"{args.search}/model.pt"
        else:
            cfg = SubnetConfig(**PIPELINE, rank_ratio=0.6, **DIGITS)
            model, source = (
                train_quick(cfg, args.train_epochs),
                f"trained here for {args.train_epochs} epochs",
            )
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    test_x, test_y = load_digits_split("test", cfg.img_size)
    test_x, test_y = test_x[: args.images], test_y[: args.images]
    q = quantize_model(model)
    with torch.no_grad():
        float_top1 = float((model(to_model_input(test_x)).argmax(1).numpy() == test_y).mean() * 100)
    r: dict = {"searched": {"subnet": cfg.short(), "source": source, "float_top1": float_top1}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        r["exactness"] = {}
        subnets = (
            {} if args.skip_exactness else {**SUBNETS, "searched": (cfg, "the pipeline's searched subnet")}
        )
        for i, (name, (c, covers)) in enumerate(subnets.items()):
            qi = q if name == "searched" else random_quant_vit(c, np.random.default_rng(i))
            x = load_digits_split("test", c.img_size)[0][: args.images]
            r["exactness"][name] = {
                "subnet": c.short(),
                "covers": covers,
                **host_exactness(qi, x, tmp / name),
            }
            print(f"{name}: {r['exactness'][name]}", file=sys.stderr)
        r["speed"] = speed(q, model, test_x, tmp, args.numpy_images)
        qx = test_x[: args.qemu_images]
        r["board"] = {"searched": board_run(q, tmp, "board_searched", "stm32f746", qx)}
        big = SUBNETS["avg_lowrank_p5"][0]
        qb = random_quant_vit(big, np.random.default_rng(7))
        r["board"]["avg_lowrank_p5"] = board_run(qb, tmp, "board_p5", "stm32f427", qx[:1])
        r["tradeoffs"] = tradeoffs(q, test_x, test_y, tmp, 1)
    for b in r["board"].values():
        for k in ("host", "qemu"):
            b.get(k, {}).pop("logits", None)
    text = markdown(r)
    print(text)
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
