"""The config matrix of ``bench/space_vs_grid.py``: its rows, their command lines, and the gathered
``matrix.json`` BENCHMARKS.md renders (one section, one row per variant)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.files import atomic_write_text

MATRIX_FILE, ROW_FILE = "matrix.json", "matrix_row.json"  # the gathered rows; a row's command and wall-clock


@dataclass(frozen=True)
class Variant:
    """One row of the benchmark's config matrix."""

    name: str
    label: str  # how BENCHMARKS.md names the row ("" for the default)
    overrides: tuple[str, ...]  # -o KEY=VALUE on top of the command's own
    seeds: tuple[int, ...]  # training seeds of the reference
    evo_seeds: tuple[int, ...]  # seeds of the evolution runs

    @property
    def suffix(self) -> str:
        """Its output directory is ``<output><suffix>``."""
        return "" if self.name == "pretrained" else f"_{self.name}"


MATRIX = (
    Variant("pretrained", "", (), (0, 1, 2, 3, 4), tuple(range(12))),
    Variant("scratch", "from random init", ("pretrain.cfg=null",), (0, 1, 2), tuple(range(6))),
    Variant(
        "lecun",
        "from random init, qkv init lecun",
        (
            "pretrain.cfg=null",
            "recipe.overrides.model.qkv_init=lecun",
            "recipe.overrides.optim.warmup_epochs=1",
        ),
        (0, 1, 2),
        tuple(range(6)),
    ),
)


def variant_argv(args: argparse.Namespace, v: Variant) -> list[str]:
    """The command line of one matrix row: the command's own settings plus the row's."""
    kb, rest = divmod(args.budget, 1024)
    argv = ["--budget", f"{kb}KB" if not rest else f"{args.budget}B", "--output", f"{args.output}{v.suffix}", "--grid", args.grid,
            "--epoch-share", str(args.epoch_share), "--replay-seeds", str(args.replay_seeds),
            "--jobs", str(args.jobs), *(["--cfg", args.cfg] if args.cfg else []),
            *(x for o in [*args.overrides, *v.overrides] for x in ("-o", o)),
            "--seeds", *map(str, v.seeds), "--evo-seeds", *map(str, v.evo_seeds)]  # fmt: skip
    return argv


def gather_matrix(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every row with a summary under its output directory, written to ``<output>/matrix.json``
    (what BENCHMARKS.md renders: each row's summary without its per-visit results)."""
    gathered = []
    for v in MATRIX:
        out = Path(f"{args.output}{v.suffix}")
        if not (out / "summary.json").exists():
            continue
        row = json.loads((out / ROW_FILE).read_text()) if (out / ROW_FILE).exists() else {}
        summary = json.loads((out / "summary.json").read_text())
        summary.pop("grid_scores")  # every visit's full result: in summary.json, not in the small record
        gathered.append({"name": v.name, "label": v.label, **row, "summary": summary})
    atomic_write_text(Path(args.output) / MATRIX_FILE, json.dumps({"variants": gathered}, indent=1))
    return gathered
