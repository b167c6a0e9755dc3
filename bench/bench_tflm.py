"""Planner and ``tflm`` schedule against TF-Lite Micro's measured arena head.

Exports every subnet of ``deploy.compare.COMPARE_SUBNETS`` to int8 .tflite, measures it in
tflite-micro and prints a Markdown table: emulated planner over the file, measured head,
config-only ``tflm`` estimate and its error. Needs the deployment venv:

    .venv-deploy/bin/python -m bench.bench_tflm [--out bench/tflm.md] [--keep-dir DIR] [--json PATH]

``--arena`` instead measures the whole arena on held-out subnets (:func:`held_out_subnets`:
both spaces, relu / gelu_sigmoid, avg / cls, low-rank attention, padding, depth 1, 1000
classes, one input channel): TFLM's head, tail and total, the smallest arena that runs
(bisection in child processes) and the config-only ``tflm`` figure with its error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import torch

from deploy.compare import COMPARE_SUBNETS, LARGE_SUBNETS, compare_subnet, markdown_table
from search_space.config import SubnetConfig

log = logging.getLogger(__name__)


def held_out_subnets(n_small: int = 28, n_large: int = 4, seed: int = 34) -> list[SubnetConfig]:
    """Subnets outside the test and bench lists, varied along the axes the tail depends on."""
    import dataclasses

    import numpy as np

    from search_space.space import load_space

    rng = np.random.default_rng(seed)
    variants = [
        dict(act="relu"), dict(pool="cls"), dict(attn_rank_ratio=0.5), dict(img_size=50),
        dict(num_classes=1000), dict(in_chans=1), dict(act="relu", pool="cls", img_size=62),
        dict(attn_rank_ratio=0.3, in_chans=1),
    ]  # fmt: skip
    small = load_space("digits-tiny").replace(img_size=48)
    out = []
    for k in range(n_small):
        cfg = small.sample(rng)
        if k % 5 == 0:  # depth 1
            cfg = dataclasses.replace(cfg, depth=1, num_heads=cfg.num_heads[:1], mlp_ratio=cfg.mlp_ratio[:1])
        out.append(dataclasses.replace(cfg, **variants[k % len(variants)]))
    large = load_space("mcuformer-t")
    for k in range(n_large):
        cfg = dataclasses.replace(large.sample(rng), act="relu" if k % 2 else "gelu_sigmoid")
        out.append(cfg if k != 1 else dataclasses.replace(cfg, pool="avg"))
    return out


def arena_rows(subnets: list[SubnetConfig], keep_dir: str | None = None) -> list[dict]:
    """Export, measure and bisect each subnet; compare with the config-only arena."""
    from deploy.export import export_int8, randomize_affine
    from deploy.tflm_measure import measure_arena, smallest_arena_bytes
    from memory_model.tflm import tflm_arena
    from search_space.static import StaticViT

    rows = []
    for cfg in subnets:
        torch.manual_seed(0)
        out = None if keep_dir is None else Path(keep_dir) / f"{cfg.short().replace(' ', '_')}.tflite"
        model = export_int8(randomize_affine(StaticViT(cfg), 0), cfg, out)
        usage = measure_arena(model)
        smallest = smallest_arena_bytes(model, usage.total_bytes, step_bytes=8)
        est = tflm_arena(cfg)
        row = dict(
            subnet=cfg.short(), img=cfg.img_size, act=cfg.act, pool=cfg.pool, in_chans=cfg.in_chans,
            classes=cfg.num_classes, head=usage.head_bytes, tail=usage.tail_bytes, total=usage.total_bytes,
            smallest=smallest, est_head=est.head_bytes, est_tail=est.tail.tail_bytes, estimate=est.total_bytes,
            est_32bit=tflm_arena(cfg, 32).total_bytes, top_op=est.tail.dominant_kind,
            error=(est.total_bytes - smallest) / smallest,
        )  # fmt: skip
        log.info(
            "%s: smallest %d, estimate %d (%+.2f%%)",
            cfg.short(),
            smallest,
            est.total_bytes,
            100 * row["error"],
        )
        rows.append(row)
    return rows


def arena_table(rows: list[dict]) -> str:
    """The held-out comparison as a Markdown table (bytes; 64-bit host)."""
    lines = [
        "| subnet | img | act | pool | C in | classes | head | tail | total | smallest running arena "
        "| estimate | error | 32-bit (modelled) | top tail op |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['subnet']} | {r['img']} | {r['act']} | {r['pool']} | {r['in_chans']} | {r['classes']} "
            f"| {r['head']:,} | {r['tail']:,} | {r['total']:,} | {r['smallest']:,} | {r['estimate']:,} "
            f"| {100 * r['error']:+.2f}% | {r['est_32bit']:,} | {r['top_op']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the Markdown table to this file")
    parser.add_argument("--keep-dir", help="keep the exported .tflite files in this directory")
    parser.add_argument("--limit", type=int, default=None, help="only the first N subnets")
    parser.add_argument("--large", action="store_true", help="add MCUFormer-T-sized subnets at 240 px (slow)")
    parser.add_argument("--json", help="also write the figures (and the table) to this JSON file")
    parser.add_argument("--arena", action="store_true", help="whole arena on held-out subnets (see above)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    if args.keep_dir:
        Path(args.keep_dir).mkdir(parents=True, exist_ok=True)
    if args.arena:
        return _arena_main(args)
    rows = []
    subnets = COMPARE_SUBNETS[: args.limit] + (LARGE_SUBNETS if args.large else ())
    for cfg in subnets:
        row = compare_subnet(cfg, keep_dir=args.keep_dir)
        log.info(
            "%s: planner %d, tflite-micro %d, tflm %d (%+.2f%%), export %.1fs",
            cfg.short(), row.planner_head_bytes, row.measured_head_bytes, row.tflm_bytes,
            100 * row.tflm_error, row.export_s,
        )  # fmt: skip
        rows.append(row)
    table = markdown_table(rows)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    exact = all(r.planner_head_bytes == r.measured_head_bytes for r in rows)
    within = all(abs(r.tflm_error) <= 0.02 for r in rows)
    print(f"\nplanner == tflite-micro on {sum(r.planner_head_bytes == r.measured_head_bytes for r in rows)}"
          f"/{len(rows)}; tflm within 2% on {sum(abs(r.tflm_error) <= 0.02 for r in rows)}/{len(rows)}")  # fmt: skip
    if args.json:
        from common.files import atomic_write_text

        figures = {
            "subnets": len(rows),
            "planner_equal": sum(r.planner_head_bytes == r.measured_head_bytes for r in rows),
            "tflm_within_2pct": sum(abs(r.tflm_error) <= 0.02 for r in rows),
            "max_abs_tflm_error": max((abs(r.tflm_error) for r in rows), default=0.0),
            "table": table,
        }
        atomic_write_text(Path(args.json), json.dumps(figures, indent=1))
    return 0 if exact and within else 1


def _arena_main(args: argparse.Namespace) -> int:
    from common.files import atomic_write_text

    subnets = held_out_subnets()[: args.limit]
    rows = arena_rows(subnets, args.keep_dir)
    table = arena_table(rows)
    worst = max(rows, key=lambda r: abs(r["error"]))
    below = sum(r["estimate"] < r["smallest"] for r in rows)
    within = sum(abs(r["error"]) <= 0.01 for r in rows)
    summary = (
        f"{len(rows)} subnets: estimate within 1% of the smallest running arena on {within}, below it on "
        f"{below}; worst error {100 * worst['error']:+.2f}% ({worst['subnet']})"
    )
    print(table + "\n\n" + summary)
    if args.out:
        atomic_write_text(Path(args.out), table + "\n\n" + summary + "\n")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({"rows": rows, "summary": summary}, indent=1))
    return 0 if below == 0 and within == len(rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
