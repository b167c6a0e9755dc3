"""The BENCHMARKS.md section of ``bench/space_vs_grid.py``: one claim, one config matrix (the rows
of `bench.space_vs_grid.MATRIX`: new points from the pretrained dense supernet, from random init,
from random init with the lecun qkv init), each row's details on ``docs/benchmarks/space_vs_grid.md``."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.landscape import TARGET_GAP, within_target
from bench.report_doc import Doc, command_text, figure, table
from bench.space_vs_grid_matrix import MATRIX, Variant
from search.space.loop import path_text

STEP = "space_vs_grid"
TITLE = "Space evolution vs exhaustive grid"
CLAIM = "space evolution within 1 point of the grid-best S at ≤ 25% of its epochs"
INTROS = {  # what a row changes, shown above its details
    "scratch": "The same benchmark with every new point's supernet started from random initialisation "
    "(`-o pretrain.cfg=null`, the evolution's default before the dense pretraining): each t-epoch "
    "visit then sits in the early, seed-dominated phase of training.",
    "lecun": "From random init as above, with every point's supernet initialised with `model.qkv_init: lecun` "
    "and one warm-up epoch (`-o pretrain.cfg=null -o recipe.overrides.model.qkv_init=lecun -o "
    "recipe.overrides.optim.warmup_epochs=1`): the default init spends most of a visit's first "
    "epoch at uniform attention (loss ln 10). An evolution compares its points at equal E after warm "
    "starts and catch-ups (E > t), the reference each point as a new point at E = t.",
}


def _suffix(v: Variant) -> str:
    return f" ({v.label})" if v.label else ""


def _rows(doc: Doc) -> dict[str, dict[str, Any]]:
    """Every measured row of the matrix by name: ``{label, command, wall_s, summary}``. Reads the
    step's gathered ``matrix``, or the older layout of one step per row (``space_vs_grid``,
    ``space_vs_grid_scratch``, ``space_vs_grid_lecun``, each holding its ``summary``)."""
    d = doc.results.data(STEP)
    if d and "matrix" in d:
        return {r["name"]: r for r in d["matrix"]["variants"]}
    rows = {}
    for v in MATRIX:
        old = doc.results.data(STEP + v.suffix)
        if old and "summary" in old:
            rec = doc.results.record(STEP + v.suffix)
            rows[v.name] = {"name": v.name, "label": v.label, **rec, "summary": old["summary"]}
    return rows


def space_vs_grid_section(doc: Doc) -> None:
    """The claim's section (the matrix table, the verdicts, the reading) and the detail page."""
    doc.section(TITLE, STEP, "python -m bench.space_vs_grid --matrix --budget 320KB")
    rows = _rows(doc)
    if not rows:
        for v in MATRIX:
            doc.target(CLAIM + _suffix(v), "–", None)
        return
    table_rows = []
    for v in MATRIX:
        r = rows.get(v.name)
        if r is None:
            table_rows.append([v.name, *["–"] * 8, "not run"])
            continue
        s = r["summary"]
        within = sum(within_target(e["gap"]) for e in s["evolutions"])
        grid_gap = statistics.fmean(e["gap"] for e in s["grid_picks"])
        spread = "–" if s["S_sd_mean"] is None else f"{100 * s['S_sd_mean']:.2f}"
        met = "met" if s["target_met"] else "**missed**"
        table_rows.append([
            v.name, _start(s), len(s["seeds"]), len(s["evolutions"]), spread, f"{100 * s['gap_mean']:.2f}",
            f"{within} of {len(s['evolutions'])}", f"{100 * grid_gap:.2f}", f"{100 * s['epoch_share_max']:.0f}%", met,
        ])  # fmt: skip
    head = ["row", "new points start from", "reference seeds", "evolution runs", "spread of one visit (points)",
            "mean gap (points)", "runs within 1 point", "grid's single-seed picks (points)", "epochs (max share)",
            "target"]  # fmt: skip
    link = doc.page(STEP, f"{TITLE}: every row of the matrix", "")
    doc.add(
        "\nOne benchmark, one config matrix: every row trains the grid of rank ratio × patch size under each "
        "reference seed, runs one space evolution per evolution seed under a cap of 25% of the grid's "
        "epochs, and judges each run's chosen point by its gap to the reference-best S (in points of A); "
        "the rows differ in where a new point's supernet starts. Every row's reference landscape, runs, "
        f"replays, noise floor and handed-over supernets: {link}.\n\n" + table(head, table_rows)
    )
    for v in MATRIX:
        r = rows.get(v.name)
        if r is None:
            doc.target(CLAIM + _suffix(v), "–", None)
            continue
        s = r["summary"]
        _target(doc, s, CLAIM + _suffix(v))
        cmd = command_text(r, "python -m bench.space_vs_grid")
        wall = f", {r['wall_s'] / 60:.1f} min" if r.get("wall_s") is not None else ""
        intro = f"\n{INTROS[v.name]}\n" if v.name in INTROS else ""
        doc.page(
            STEP,
            "",
            f"\n## {TITLE}{_suffix(v)}\n\nSource: {cmd}{wall}.\n{intro}" + _details(s, STEP + v.suffix),
        )
        if v.suffix:
            doc.notes(STEP + v.suffix, STEP)
    doc.notes(STEP)


def _start(s: dict[str, Any]) -> str:
    pre = s.get("pretrain")
    return f"the dense supernet ({pre['epochs']} epochs over `{pre['space']}`)" if pre else "random init"


def _details(s: dict[str, Any], name: str) -> str:
    """A row's full figures (the detail page): reference landscape, every run, grid picks, runs
    without restarts, handed-over supernets, replays and the figure."""
    best, seeds = s["reference_best"], s["seeds"]
    chosen = {v["point"] for v in s["evolutions"]}

    def sd(v: dict[str, Any]) -> str:
        return "–" if v["S_sd"] is None else f"{100 * v['S_sd']:.2f}"

    rows = [
        [k, f"{v['S']:.4f}", sd(v), " / ".join(f"{x:.3f}" for x in v["S_per_seed"]), f"{100 * v['A']:.2f}",
         f"{v['R']:.3f}", "chosen" if k in chosen else ""]
        for k, v in sorted(s["reference"].items(), key=lambda kv: -kv[1]["S"])[:10]
    ]  # fmt: skip
    evo_rows = [
        [v["seed"], path_text(v["trajectory"], v.get("climbs"), " → "), v["point"], f"{v['total_epochs']} ({100 * v['epoch_share']:.0f}%)",
         " ".join(map(str, v.get("judged_on", seeds))), f"{v['S_ref']:.4f}", f"{100 * v['gap']:.2f}", v["rank"],
         v["stop_reason"]]
        for v in s["evolutions"]
    ]  # fmt: skip
    pick_rows = [
        [v["seed"], v["point"], f"{v['S_own']:.4f}", f"{v['S_ref']:.4f}", f"{100 * v['gap']:.2f}", v["rank"]]
        for v in s["grid_picks"]
    ]
    n = len(s["reference"])
    # summaries measured before runs were judged without their own seed hold no all-seeds gap
    loo = "gap_mean_all_seeds" in s
    all_seeds = (
        f"; judged on every seed, its own included, {100 * s['gap_mean_all_seeds']:.2f}" if loo else ""
    )
    judged_on = (
        "the reference without its own seed, or all of it for a seed outside it"
        if loo
        else "the reference (every seed, its own included)"
    )
    by_count: dict[int, list[float]] = {}
    for v in s["evolutions"]:
        by_count.setdefault(len(v.get("judged_on", seeds)), []).append(100 * v["gap"])
    split = (
        ""
        if len(by_count) < 2
        else " (" + "; ".join(
            f"{statistics.fmean(g):.2f} over the {len(g)} run{'s' * (len(g) > 1)} judged on {n} seed{'s' * (n > 1)}"
            for n, g in sorted(by_count.items())
        ) + ")"
    )  # fmt: skip
    why = (
        " (it takes its visits of new points from that seed's grid jobs: a reference holding them shares "
        "their noise)" if loo else ""
    )  # fmt: skip
    pre = s.get("pretrain")
    start = (
        f"from the dense supernet pretrained once ({pre['epochs']} epochs over `{pre['space']}`, max subnet "
        f"{pre['holdout_top1']['max']:.2f}% holdout top-1; shared by the grid and every evolution, counted in "
        "neither's epochs)" if pre else "from random init"
    )  # fmt: skip
    gap, share = 100 * s["gap_mean"], s["epoch_share_max"]
    noise = "" if s["S_sd_mean"] is None else (
        f" The spread of one measurement over seeds averages {100 * s['S_sd_mean']:.2f} points of S per point."
    )  # fmt: skip
    return (
        f"\nGrid: {s['grid_points']} points, {s['grid_points_trained']} of them with a subnet within budget × t = "
        f"{s['epochs_per_visit']} epochs = {s['epochs_grid']} epochs per exhaustive run (a point where nothing fits "
        "scores S = η·R without training, in the grid as in the evolution). "
        f"Every new point's supernet starts {start}. Reference S of a point: the mean over training seeds "
        f"{seeds} of its t-epoch supernet trained as a new point, scored on the holdout split like a visit.{noise} Best reference point: "
        f"{best['point']} (S {best['S']:.4f}).\n\nReference landscape (top 10 of {n}):\n\n"
        + table(["point", "S (mean)", "sd (points)", "S per seed", "A %", "R", ""], rows)
        + f"\nSpace evolution, one run per seed, judged on {judged_on}{why}:\n\n"
        + table(
            [
                "seed",
                "path",
                "chosen",
                "epochs (share)",
                "judged on seeds",
                "reference S",
                "gap (points)",
                "rank",
                "stop",
            ],
            evo_rows,
        )
        + f"\nMean gap {gap:.2f} points{split} (max {100 * s['gap_max']:.2f}){all_seeds}; epochs at most "
        f"{100 * share:.0f}% of one exhaustive grid. The exhaustive grid itself, one seed at a time (its "
        f"own pick judged on {'the reference without its own seed' if loo else judged_on}):\n\n"
        + table(["seed", "pick", "its own S", "reference S", "gap (points)", "rank"], pick_rows)
        + _first_climb_text(s)
        + _delivered_text(s.get("delivered"))
        + _replay_text(s.get("replay"), s.get("replay_without_restarts"))
        + _noisy_replay_text(s.get("replay_noisy"), s.get("grid_measured"))
        + figure(name, "reference S over the grid and the evolutions' paths", Path())
    )


def _target(doc: Doc, s: dict[str, Any], what: str) -> None:
    """The row's line in the targets table, and why it missed under the section."""
    seeds = s["seeds"]
    gap, share = 100 * s["gap_mean"], s["epoch_share_max"]
    grid_gap = statistics.fmean(v["gap"] for v in s["grid_picks"])
    spread = 100 * (s["S_sd_mean"] or 0)
    within = sum(within_target(v["gap"]) for v in s["evolutions"])
    dl = s.get("delivered") or {}
    test = (
        f"; on the {dl['split']} split the evolutions' chosen supernets score S {dl['evolution_mean']:.4f}, "
        f"the grid picks' {dl['grid_pick_mean']:.4f}"
        if dl.get("evolution_mean") is not None
        else ""
    )
    doc.target(
        what,
        f"mean gap {gap:.2f} points over {len(s['evolutions'])} runs on a {len(seeds)}-seed reference, "
        f"≤ {100 * share:.0f}% of the epochs (the grid's own single-seed picks {100 * grid_gap:.2f}){test}",
        s["target_met"],
        f"One t-epoch training measures S with a spread of {spread:.2f} points between seeds, so the "
        f"{len(seeds)}-seed reference is itself uncertain by about {spread / len(seeds) ** 0.5:.1f} points at "
        f"each point. {within} of {len(s['evolutions'])} runs end within 1 point. The exhaustive grid's own "
        f"single-seed picks miss the reference best by {100 * grid_gap:.2f} points on average, the evolution "
        f"by {gap:.2f} with at most {100 * share:.0f}% of the epochs.{_floor_text(s)}",
        by="" if within_target(s["gap_mean"]) else f"by {gap - 100 * TARGET_GAP:.2f} points",
    )


def _floor_text(s: dict[str, Any]) -> str:
    """The oracle's noise floor at each number of seeds the runs were judged on."""
    floors = [f for f in s.get("noise_floors") or [s.get("noise_floor")] if f]
    if not floors:
        return ""
    f = floors[0]
    at = ", ".join(
        f"{100 * g['gap_mean']:.2f} points below the best of a fresh {g['judged_seeds']}-seed reference on "
        f"average (within 1 point {100 * g['within_1_point']:.0f}% of the time)"
        for g in floors
    )
    if f.get("S_sd_within_seed") is not None:
        sd = (
            f"one measurement's spread {100 * f['S_sd_noise']:.2f} points, the residual sd of S once each "
            f"seed's common shift is removed (pooled per-point sd {100 * f['S_sd_pooled']:.2f})"
        )
    else:
        sd = f"pooled sd {100 * f['S_sd_pooled']:.2f} points"
    return (
        f" An oracle that always picks the landscape's best point would itself land {at} (the reference "
        f"means taken as the truth, {sd}, {f['draws']:,} simulated references): the noise floor of this "
        "measurement, what even a perfect pick shows on average (single runs scatter around it)."
    )


def _first_climb_text(s: dict[str, Any]) -> str:
    """The same runs without restarts: each one's first climb (what ``restarts: 0`` returns)."""
    firsts = [v["first_climb"] for v in s["evolutions"] if "first_climb" in v]
    if not firsts or all(v["first_climb"]["point"] == v["point"] and v["first_climb"]["total_epochs"] ==
                         v["total_epochs"] for v in s["evolutions"]):  # fmt: skip
        return ""
    rows = [
        [v["seed"], v["first_climb"]["point"], v["first_climb"]["total_epochs"], f"{100 * v['first_climb']['gap']:.2f}",
         v["point"], v["total_epochs"], f"{100 * v['gap']:.2f}"]
        for v in s["evolutions"]
    ]  # fmt: skip
    within = sum(within_target(f["gap"]) for f in firsts)
    heads = [
        "seed",
        "first climb's choice",
        "epochs",
        "gap (points)",
        "with restarts",
        "epochs",
        "gap (points)",
    ]
    return (
        "\nThe same runs without restarts: a run's first climb is exactly the run `evolve.restarts: 0` makes "
        "(restarts begin only once it has stopped), so its choice is what that setting returns:\n\n"
        + table(heads, rows)
        + f"\nWithout restarts: mean gap {100 * statistics.fmean(f['gap'] for f in firsts):.2f} points, {within} "
        f"of {len(firsts)} runs within 1 point, {statistics.fmean(f['total_epochs'] for f in firsts):.1f} epochs on "
        f"average; with restarts: {100 * s['gap_mean']:.2f} points, "
        f"{sum(within_target(v['gap']) for v in s['evolutions'])} of {len(firsts)}, "
        f"{statistics.fmean(v['total_epochs'] for v in s['evolutions']):.1f} epochs.\n"
    )


def _delivered_text(d: dict[str, Any] | None) -> str:
    """What each method hands over, scored on the test split (no choice saw it)."""
    if not d or d["evolution_mean"] is None:
        return ""
    es = sorted({v["E"] for v in d["evolutions"]})
    rows = [[v["seed"], v["point"], f"{v['S_test']:.4f}", f"{v['best_S_test']:.4f}"] for v in d["grid"]]
    diff = 100 * (d["evolution_mean"] - d["grid_pick_mean"])
    return (
        f"\nWhat each method hands over: the chosen point's supernet, re-scored on the {d['split']} split (no "
        f"choice saw it) with one draw of {d['subnets']} in-budget subnets for every supernet. The evolutions' "
        f"chosen supernets, trained to E {es[0]}–{es[-1]} by warm starts and catch-ups, score S "
        f"{d['evolution_mean']:.4f} on average over {len(d['evolutions'])} runs; the exhaustive grid's picks "
        f"(E = t) score {d['grid_pick_mean']:.4f} and the reference-best point's supernets "
        f"{d['grid_best_mean']:.4f} (evolution − grid pick: {diff:+.2f} points). This is not the target's "
        "measure (that one compares points at E = t), and more epochs favour some points more than others:\n\n"
        + table(["grid seed", "its pick", f"S ({d['split']})", f"reference best's S ({d['split']})"], rows)
    )


def _replay_text(r: dict[str, Any] | None, bare: dict[str, Any] | None = None) -> str:
    """The no-training replay of the update rule on the reference landscape (``bare``: the same
    without restarts)."""
    if not r:
        return ""
    rb = r["random"]
    without = (
        ""
        if not bare
        else f" Without restarts the replay ends {100 * bare['gap_mean']:.2f} points below the best, within 1 "
        f"point from {100 * bare['within_1_point']:.0f}% of the starts, spending {bare['epochs_mean']:.1f} epochs."
    )  # fmt: skip
    return (
        f"\nReplayed on the reference landscape itself (S looked up, no training, the same at every E; "
        f"{r['seeds']} seeded starts with the evolutions' settings), the update rule ends "
        f"{100 * r['gap_mean']:.2f} points below the best on average and within 1 point from "
        f"{100 * r['within_1_point']:.0f}% of the starts, spending {r['epochs_mean']:.1f} epochs. The best of "
        f"{rb['points']} distinct random trained points (the same spend, exact expectation) is "
        f"{100 * rb['gap_mean']:.2f} points below and within 1 point with probability "
        f"{100 * rb['within_1_point']:.0f}%.{without} None of them sees any measurement noise: what the "
        "replay misses is the rule's own error on the shape of this landscape.\n"
    )


def _noisy_replay_text(r: dict[str, Any] | None, grid: dict[str, Any] | None) -> str:
    """The replay with every visit measured with one t-epoch training's spread, beside random
    picks and the whole grid measured once under the same noise."""
    if not r or not grid:
        return ""
    rb = r["random"]
    return (
        f"\nThe same replay with every visit measured with the spread of one t-epoch training (normal, sd "
        f"{100 * r['noise_sd']:.2f} points, drawn afresh per visit; the reference means taken as the truth) ends "
        f"{100 * r['gap_mean']:.2f} points below the best on average, within 1 point from "
        f"{100 * r['within_1_point']:.0f}% of the starts, spending {r['epochs_mean']:.1f} epochs. Under the "
        f"same noise the best measured of {rb['points']} random trained points is {100 * rb['gap_mean']:.2f} "
        f"points below ({100 * rb['within_1_point']:.0f}% within 1 point), and the exhaustive grid, every "
        f"point measured once, {100 * grid['gap_mean']:.2f} ({100 * grid['within_1_point']:.0f}%): with only "
        "the noise simulated, what each method's measurements let it find on this landscape.\n"
    )
