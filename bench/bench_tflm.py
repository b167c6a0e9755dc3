"""Planner and ``tflm`` schedule against TF-Lite Micro's measured arena head.

Exports every subnet of ``deploy.compare.COMPARE_SUBNETS`` to int8 .tflite, measures it in
tflite-micro and prints a Markdown table: emulated planner over the file, measured head,
config-only ``tflm`` estimate and its error. Needs the deployment venv:

    .venv-deploy/bin/python -m bench.bench_tflm [--out bench/tflm.md] [--keep-dir DIR] [--json PATH]
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

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the Markdown table to this file")
    parser.add_argument("--keep-dir", help="keep the exported .tflite files in this directory")
    parser.add_argument("--limit", type=int, default=None, help="only the first N subnets")
    parser.add_argument("--large", action="store_true", help="add MCUFormer-T-sized subnets at 240 px (slow)")
    parser.add_argument("--json", help="also write the figures (and the table) to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    if args.keep_dir:
        Path(args.keep_dir).mkdir(parents=True, exist_ok=True)
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
        from training.checkpoint import atomic_write_text

        figures = {
            "subnets": len(rows),
            "planner_equal": sum(r.planner_head_bytes == r.measured_head_bytes for r in rows),
            "tflm_within_2pct": sum(abs(r.tflm_error) <= 0.02 for r in rows),
            "max_abs_tflm_error": max((abs(r.tflm_error) for r in rows), default=0.0),
            "table": table,
        }
        atomic_write_text(Path(args.json), json.dumps(figures, indent=1))
    return 0 if exact and within else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
