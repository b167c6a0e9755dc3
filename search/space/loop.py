"""MCUFormer's search-space evolution over the (low-rank ratio, patch size) grid.

A space point ``x`` is a pair of grid indices. Each point has a supernet; a *visit* trains it
``epochs`` more epochs (one resumable job, run by the ``train`` callable) and yields its score
``S = A + eta * R`` (A: mean holdout top-1 of sampled in-budget subnets, R: share of the point's
subnets within budget; both in [0, 1]). ``E(x)`` counts every epoch behind the point's weights,
including the epochs of the supernet it was warm-started from.

One step at the current point x:

1. Neighbourhood: the ``k`` nearest trained points (scikit-learn `NearestNeighbors` on grid
   indices, i.e. coordinates divided by each axis' step) among points with ``E == E(x)``. If
   fewer than ``k`` share E(x) or they are collinear, take the ``k`` nearest points of any E and
   train each lagging one up to their largest E (the paper's fairness rule).
2. Fit ``S ~ w . u + b`` by `LinearRegression` (minimum-norm for 2 or collinear points, no
   slope for one point); ``w_i`` is the change of S per grid step along axis i.
3. Move ``u_i += sign(w_i) * floor(|w_i| / h_i)`` (toward higher S; symmetric rounding),
   capped at ``max_move`` steps and clipped to the grid.
4. Stop when no axis moves, the new point was already on the path, or at ``max_steps`` (per
   climb) / ``max_total_epochs`` (a hard cap: a step stops before a catch-up or visit would
   cross it); otherwise train the new point ``t`` epochs, warm-started from the nearest trained supernet
   (its own when it was trained before), and repeat.

A point none of whose subnets fits the budget scores A = 0 whatever its weights, so its visits
report ``trained: False`` and cost no epochs. As its S does not depend on E, it stands at the E
of its nearest trained point and counts as trained as long as any point: it takes part in fits
without a catch-up, and being at it never forces catch-ups of its neighbours (a fit still
compares at least two trained points once the run has two; a neighbourhood of one trained point
among untrained ones falls back to the nearest points of any E). It never serves as a warm
start and is never the chosen point while a trained point exists (it has no supernet worth
searching).

When a climb stops, its choice is the best measured S of its last fit's neighbourhood (the
point it was made at and its neighbours, all trained for the same E when it was made), so an
update that overshoots the optimum or a cycle between two points still ends on the better
one, and a point reached by the last move but stopped (by a limit) before it could be compared
at equal E is not preferred merely for having trained longer. Without any fit it is the best
point the climb started from (the best initial point for the first climb).

Restarts (``restarts`` > 0): a climb that stops before the epoch cap (no axis moves, a repeat,
``max_steps``) leaves epochs unspent, so a new climb starts from a random (seeded) point never
visited, trained from the run's starting weights like an initial point; the path may not return
to an earlier climb's points either (a repeat). The run's choice is the best of the climbs'
choices compared at equal E: lagging ones are trained up to the largest E when the cap allows,
else compared at the largest E all of them were measured at, else as they stand.

Independent visits are requested together: the initial points, the neighbours a fit needs
caught up and the lagging choices of the final comparison go to ``train_many`` at once (a
runner may train them in parallel), and their results are applied in a fixed order, so the
run is the same as with one visit after the other (each visit's training depends on its own
seed, point and warm start only).

Resume: the run is a deterministic replay. Every visit has a stable id (``<point>/v<n>``) and
its result is cached in the state file, written atomically after every visit and every step;
rerunning replays the cached visits without training and continues where the run stopped.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors
from tqdm import tqdm

from common.errors import ConfigError
from common.files import atomic_write_text
from search.space.grid import (
    EvolutionSettings,
    Fit,
    Grid,
    Point,
    PointRecord,
    TrainFn,
    VisitRequest,
    climb_segments,
    climb_trail,
    initial_points,
    local_fit,
    move_steps,
    path_text,
)

__all__ = [  # the grid, the fit and the settings live in search.space.grid; importable from here too
    "EvolutionSettings", "Fit", "Grid", "Point", "PointRecord", "SpaceEvolution", "TrainFn", "TrainManyFn",
    "VisitRequest",
    "climb_segments", "climb_trail", "initial_points", "local_fit", "move_steps", "path_text",
]  # fmt: skip

log = logging.getLogger("mcunas.evolve")
TrainManyFn = Callable[[list[VisitRequest]], list[dict[str, Any]]]  # independent visits, results in order
STATE_FORMAT = "mcunas-space-evolution/1"


class SpaceEvolution:
    """The evolution loop over a `Grid`; ``train`` runs one visit and returns its scores."""

    def __init__(
        self,
        grid: Grid,
        settings: EvolutionSettings,
        train: TrainFn,
        state_path: str | Path | None = None,
        fingerprint: dict[str, Any] | None = None,
        feasible: Callable[[Point], bool] | None = None,
        train_many: TrainManyFn | None = None,
    ) -> None:
        self.grid, self.settings, self.train, self.feasible = grid, settings, train, feasible
        self.train_many: TrainManyFn = train_many or (lambda reqs: [self.train(r) for r in reqs])
        self.state_path = Path(state_path) if state_path is not None else None
        self.fingerprint = json.loads(json.dumps(fingerprint or {}))
        self.cache: dict[str, dict[str, Any]] = {}
        if self.state_path is not None and self.state_path.exists():
            saved = json.loads(self.state_path.read_text())
            if saved.get("format") != STATE_FORMAT:
                raise ConfigError(f"{self.state_path} is not a space-evolution state file")
            if saved.get("fingerprint") != self.fingerprint:
                diff = sorted(
                    k
                    for k in set(saved.get("fingerprint", {})) | set(self.fingerprint)
                    if saved.get("fingerprint", {}).get(k) != self.fingerprint.get(k)
                )
                raise ConfigError(
                    f"{self.state_path.parent} holds a run with other settings ({', '.join(diff)}); "
                    "use another --output or delete that directory"
                )
            self.cache = saved.get("visits", {})
        self._reset()

    def _reset(self) -> None:
        self.points: dict[Point, PointRecord] = {}
        self.trajectory: list[dict[str, Any]] = []
        self.fits: list[dict[str, Any]] = []
        self.total_epochs = 0
        self.status, self.stop_reason, self.result = "running", None, None
        self.final: dict[str, Any] | None = None  # the comparison of the climbs' choices

    # ---- visits -------------------------------------------------------------------------
    def _request(self, pt: Point, epochs: int, init: Point | None, label: str | None = None) -> VisitRequest:
        """The visit's request (its id, epochs and warm start follow from the state so far)."""
        rec = self.points.get(pt)
        job_id = f"{self.grid.key(pt)}/{label or f'v{len(rec.jobs) if rec else 0}'}"
        init_job = None if init is None else self.points[init].jobs[-1]
        base_e = 0 if init is None else self.points[init].epochs
        req = VisitRequest(job_id, pt, self.grid.value(pt), epochs, init_job, base_e + epochs)
        cached = self.cache.get(job_id)
        if cached is not None and (cached["epochs"] != epochs or cached["init_job"] != init_job):
            raise ConfigError(
                f"cached visit {job_id} was trained differently ({cached['epochs']} epochs from "
                f"{cached['init_job']}); use another --output"
            )
        return req

    def _visits(self, specs: list[tuple[Point, int, Point | None, str | None]]) -> list[PointRecord]:
        """Independent visits (distinct points), requested at once: the uncached ones go to
        ``train_many`` together, then every result is applied in the order given, exactly as
        one visit after the other would."""
        reqs = [self._request(*spec) for spec in specs]
        assert len({r.point for r in reqs}) == len(reqs), "a batch visits each point once"
        todo = [r for r in reqs if r.job_id not in self.cache]
        for req in todo:
            log.info(
                "visit %s: %d epochs from %s (E -> %d)",
                req.job_id, req.epochs, req.init_job or "the run's starting weights", req.total_epochs,
            )  # fmt: skip
        for req, scores in zip(todo, self.train_many(todo) if todo else [], strict=True):
            self.cache[req.job_id] = json.loads(json.dumps({**asdict(req), "scores": scores}))
        return [self._apply(req, self.cache[req.job_id]["scores"]) for req in reqs]

    def _visit(self, pt: Point, epochs: int, init: Point | None, label: str | None = None) -> PointRecord:
        return self._visits([(pt, epochs, init, label)])[0]

    def _apply(self, req: VisitRequest, scores: dict[str, Any]) -> PointRecord:
        pt = req.point
        rec = self.points.setdefault(pt, PointRecord(pt))
        rec.jobs.append(req.job_id)
        rec.trained = bool(scores.get("trained", True))
        rec.epochs = req.total_epochs if rec.trained else self._standing_epochs(pt)
        rec.S, rec.A, rec.R = (float(scores[k]) for k in ("S", "A", "R"))
        rec.history.append({"E": rec.epochs, "S": rec.S, "A": rec.A, "R": rec.R})
        self.total_epochs += req.epochs if rec.trained else 0
        self._save()
        return rec

    def _nearest(self, x: Point, candidates: list[Point], k: int) -> list[Point]:
        cands = sorted(candidates)
        k = min(k, len(cands))
        nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(np.array(cands, float))
        dist, idx = nn.kneighbors(np.array([x], float))
        order = sorted(zip(dist[0], idx[0], strict=True), key=lambda t: (round(t[0], 9), cands[t[1]]))
        return [cands[i] for _, i in order]

    def _warm_source(self, x: Point) -> Point | None:
        """The nearest trained point (ties: more epochs, then grid order); None when none is."""
        trained = [p for p, r in self.points.items() if r.trained]
        if not trained:
            return None
        return min(trained, key=lambda p: (round(math.dist(p, x), 9), -self.points[p].epochs, p))

    def _standing_epochs(self, pt: Point) -> int:
        """The E an untrained point stands at: that of its nearest trained point (0 when none)."""
        src = self._warm_source(pt)
        return 0 if src is None else self.points[src].epochs

    # ---- one step -----------------------------------------------------------------------
    def _affordable(self, epochs: int, stop: bool = True) -> bool:
        """Whether ``epochs`` more keep the run within ``max_total_epochs`` (a hard cap: a step
        stops before a catch-up or a visit that would cross it); ``stop`` records the stop reason."""
        cap = self.settings.max_total_epochs
        if cap is not None and self.total_epochs + epochs > cap:
            if stop:
                self.stop_reason = "max_total_epochs reached"
            return False
        return True

    def _neighbourhood(self, x: Point) -> tuple[list[Point], list[str] | None]:
        """The k nearest points trained as long as ``x`` (catching neighbours up first); ``None``
        instead of the caught-up list when the catch-up would cross the epoch cap."""
        k, e_x = self.settings.neighbours, self.points[x].epochs
        # an untrained point's S does not depend on E: it is level with any E
        same = [p for p, r in self.points.items() if r.epochs == e_x or not r.trained]
        # ... but a fit must compare training: two trained points, once the run has two
        need = min(2, sum(r.trained for r in self.points.values()))
        if len(same) >= k:
            nbrs = self._nearest(x, same, k)
            live = [n > 1 for n in self.grid.shape]  # axes with a single value cannot span anything
            spans = not local_fit(np.array(nbrs)[:, live], np.zeros(len(nbrs))).degenerate or k <= sum(live)
            if spans and sum(self.points[p].trained for p in nbrs) >= need:
                return nbrs, []
        nbrs = self._nearest(x, list(self.points), k)
        if x not in nbrs:
            nbrs = [x, *nbrs[:-1]]
        trained = [p for p in nbrs if self.points[p].trained]  # untrained ones need no catch-up
        target = max((self.points[p].epochs for p in trained), default=e_x)
        lags = sum(target - self.points[p].epochs for p in trained)
        if not self._affordable(lags):
            return nbrs, None
        lagging = [
            (p, target - self.points[p].epochs, p, None) for p in trained if self.points[p].epochs < target
        ]
        self._visits(lagging)
        return nbrs, [self.grid.key(p) for p, *_ in lagging]

    def _step(self, step: int, x: Point) -> Point | None:
        nbrs, caught = self._neighbourhood(x)
        if caught is None:
            return None
        coords = np.array(nbrs, float)
        scores = np.array([self.points[p].S for p in nbrs])
        fit = local_fit(coords, scores)
        live = np.array([n > 1 for n in self.grid.shape])
        w = np.where(live, fit.w, 0.0)
        move = move_steps(w, self.settings.threshold, self.settings.max_move)
        new = self.grid.clip(np.array(x) + move)
        record = {
            "step": step,
            "at": self.grid.key(x),
            "E": self.points[x].epochs,
            "neighbours": [self.grid.key(p) for p in nbrs],
            "neighbour_S": [round(float(s), 6) for s in scores],
            "neighbour_E": [self.points[p].epochs if self.points[p].trained else None for p in nbrs],
            "caught_up": caught,
            "w": [round(float(v), 6) for v in w],
            "intercept": round(fit.intercept, 6),
            "degenerate": fit.degenerate,
            "move": [int(a - b) for a, b in zip(new, x, strict=True)],
            "to": self.grid.key(new),
        }
        self.fits.append(record)
        log.info(
            "step %d at %s (E=%d): w=(%+.4f, %+.4f) per step over %s -> %s",
            step, record["at"], record["E"], w[0], w[1], ", ".join(record["neighbours"]), record["to"],
        )  # fmt: skip
        if new == x:
            self.stop_reason = "converged: no axis moves"
            return None
        if any(t["point"] == list(new) for t in self.trajectory):
            self.stop_reason = f"repeat: {self.grid.key(new)} is already on the path"
            return None
        if not self._affordable(self.settings.epochs_per_visit):
            return None
        src = new if new in self.points else self._warm_source(new)
        self._visit(new, self.settings.epochs_per_visit, src)
        self._add_to_path(new, step + 1)
        return new

    def _best_of_last_fit(self) -> Point | None:
        """The best S measured in the last fit's neighbourhood (all trained equally long then;
        ties: the point it was made at), trained points first; ``None`` before any fit."""
        if not self.fits:
            return None
        keys = {self.grid.key(p): p for p in self.points}
        fit = self.fits[-1]
        cands = list(zip(fit["neighbour_S"], fit["neighbours"], strict=True))
        cands = [c for c in cands if self.points[keys[c[1]]].trained] or cands
        return keys[max(cands, key=lambda t: (t[0], t[1] == fit["at"]))[1]]

    def _best_S(self, pts: list[Point]) -> Point:
        """The point of ``pts`` with the highest current S (ties: the earlier one)."""
        return max(pts, key=lambda p: (self.points[p].S, -pts.index(p)))

    def _add_to_path(self, pt: Point, step: int, climb: int | None = None) -> None:
        rec = self.points[pt]
        r, p = self.grid.value(pt)
        climb = self.trajectory[-1]["climb"] if climb is None and self.trajectory else climb or 0
        self.trajectory.append(
            {"step": step, "climb": climb, "point": list(pt), "rank_ratio": r, "patch_size": p,
             "E": rec.epochs, "S": rec.S, "A": rec.A, "R": rec.R, "total_epochs": self.total_epochs}
        )  # fmt: skip

    # ---- the loop -----------------------------------------------------------------------
    def _climb(self, x: Point, step: int, bar: tqdm) -> tuple[Point, int]:
        """Steps from ``x`` until a stop; returns the climb's choice and the next step number."""
        fits_before, path_before = len(self.fits), len(self.trajectory) - 1
        for _ in range(self.settings.max_steps):
            nxt = self._step(step, x)
            step += 1
            bar.update()
            self._save()
            if self.stop_reason is not None:
                break
            x = nxt
            bar.set_postfix(at=self.grid.key(x), S=f"{self.points[x].S:.3f}", epochs=self.total_epochs)
        if self.stop_reason is None:
            self.stop_reason = "max_steps reached"
        if len(self.fits) > fits_before:
            return self._best_of_last_fit(), step
        return self._best_S(
            list(dict.fromkeys(tuple(t["point"]) for t in self.trajectory[path_before:]))
        ), step

    def _restart_point(self, climb: int) -> Point | None:
        """A new climb's start: a random (seeded) point with a fitting subnet never visited yet."""
        fresh = [
            p
            for p in self.grid.points()
            if p not in self.points and (self.feasible is None or self.feasible(p))
        ]
        if not fresh:
            return None
        return fresh[int(np.random.default_rng([self.settings.seed, 7, climb]).integers(len(fresh)))]

    def _final_choice(self, choices: list[Point]) -> Point:
        """The best of the climbs' choices at equal E: the lagging ones are trained up to the largest
        E when ``max_total_epochs`` allows all of it; otherwise they are compared at the largest E
        each of them was measured at (their visit histories), or, without one, as they stand."""
        cands = [p for p in dict.fromkeys(choices) if self.points[p].trained] or list(dict.fromkeys(choices))
        if len(cands) < 2:
            return cands[0]
        target = max(self.points[p].epochs for p in cands)
        lags = {p: target - self.points[p].epochs for p in cands}
        caught = []
        if self._affordable(sum(lags.values()), stop=False):
            self._visits([(p, lags[p], p, None) for p in cands if lags[p] > 0])
            caught = [self.grid.key(p) for p in cands if lags[p] > 0]
        common = set.intersection(*({h["E"] for h in self.points[p].history} for p in cands))
        at = max(common) if common else None

        def s_at(p: Point) -> float:
            return (
                self.points[p].S
                if at is None
                else [h["S"] for h in self.points[p].history if h["E"] == at][-1]
            )

        self.final = {
            "candidates": [self.grid.key(p) for p in cands],
            "E": [self.points[p].epochs for p in cands],
            "caught_up": caught,
            "compared_at_E": at,
            "S_compared": [round(s_at(p), 6) for p in cands],
        }
        return max(cands, key=lambda p: (s_at(p), -cands.index(p)))

    def run(self, progress: bool = False) -> dict[str, Any]:
        """Run (or replay and continue) the evolution; returns the result dict."""
        self._reset()
        s = self.settings
        self._visits(
            [(pt, s.epochs_per_visit, None, None) for pt in initial_points(self.grid, s, self.feasible)]
        )
        x = self._best_S(list(self.points))
        self._add_to_path(x, 0)
        bar = tqdm(
            total=s.max_steps * (s.restarts + 1), desc="space evolution", disable=None if progress else True
        )
        choices, step, reasons, climb_epochs = [], 0, [], []
        for climb in range(s.restarts + 1):
            choice, step = self._climb(x, step, bar)
            choices.append(choice)
            reasons.append(self.stop_reason)
            climb_epochs.append(self.total_epochs)
            if climb == s.restarts or self.stop_reason == "max_total_epochs reached":
                break
            start = self._restart_point(climb)
            if start is None:
                self.stop_reason = "every point with a fitting subnet visited"
                break
            if not self._affordable(s.epochs_per_visit):
                break
            self.stop_reason = None
            self._visit(start, s.epochs_per_visit, None)
            x = start
            self._add_to_path(x, step, climb + 1)
        bar.close()
        if s.restarts > 0:
            blocked = [] if self.stop_reason == reasons[-1] else [f"no restart: {self.stop_reason}"]
            self.stop_reason = "; ".join([*(f"climb {i}: {r}" for i, r in enumerate(reasons)), *blocked])
        chosen = self._final_choice(choices)
        trained = [p for p, r in self.points.items() if r.trained]
        if not self.points[chosen].trained and trained:  # nothing of it fits: no supernet to search
            chosen = self._best_S(trained)
            self.stop_reason += f"; kept {self.grid.key(chosen)}, the best trained point"
        if s.final_epochs > 0:
            self._visit(chosen, s.final_epochs, chosen, label="final")
        self.status = "done"
        rec = self.points[chosen]
        r, p = self.grid.value(chosen)
        self.result = {
            "point": self.grid.key(chosen),
            "rank_ratio": r,
            "patch_size": p,
            "E": rec.epochs,
            "S": rec.S,
            "A": rec.A,
            "R": rec.R,
            "job": rec.jobs[-1],
            "trained": rec.trained,
            "stop_reason": self.stop_reason,
            "steps": len(self.fits),
            "climbs": len(choices),
            # each climb's choice and the epochs spent when it stopped: the first climb's are
            # exactly what the run returns without restarts
            "climb_choices": [self.grid.key(c) for c in choices],
            "climb_epochs": climb_epochs,
            "total_epochs": self.total_epochs,
            "points_trained": len(self.points),
        }
        self._save()
        return self.result

    # ---- state --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "total_epochs": self.total_epochs,
            "points": {
                self.grid.key(p): {"point": list(p), "value": list(self.grid.value(p)), **_rec_dict(r)}
                for p, r in sorted(self.points.items())
            },
            "trajectory": self.trajectory,
            "fits": self.fits,
            "final": self.final,
            "result": self.result,
            "visits": self.cache,
        }

    def _save(self) -> None:
        if self.state_path is not None:
            atomic_write_text(self.state_path, json.dumps(self.state(), indent=1))


def _rec_dict(rec: PointRecord) -> dict[str, Any]:
    return {
        "E": rec.epochs, "S": rec.S, "A": rec.A, "R": rec.R, "trained": rec.trained, "jobs": rec.jobs,
        "history": rec.history,
    }  # fmt: skip
