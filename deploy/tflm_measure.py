"""Run an int8 .tflite model in TF-Lite Micro (host build) and read its arena usage.

TFLM prints its allocation log from C++ to file descriptor 2 (``print_allocations``), so the
child redirects fd 2 itself (``os.dup2``); an arena that is too small can crash the process,
so every measurement runs in a fresh child interpreter.

    python -m deploy.tflm_measure model.tflite [--arena-bytes N]

prints one JSON line ``{"head_bytes": ..., "tail_bytes": ..., "total_bytes": ...}``; with
``--smallest`` it also finds, by bisection over child processes, the smallest arena the model
runs in (``smallest_arena_bytes``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from memory_model.tflite_graph import read_graph

DEFAULT_ARENA_BYTES = 64 * 1024 * 1024  # generous: the head does not depend on the arena size
_LINE = re.compile(r"Arena allocation (head|tail|total) (\d+) bytes")


@dataclass(frozen=True)
class ArenaUsage:
    """TFLM's arena split: head = planned activations + kernel scratch; tail = persistent data."""

    head_bytes: int
    tail_bytes: int
    total_bytes: int


def parse_allocations(log: str) -> ArenaUsage:
    """Read the "Arena allocation head/tail/total N bytes" lines of TFLM's allocation log."""
    found = {kind: int(n) for kind, n in _LINE.findall(log)}
    missing = [k for k in ("head", "tail", "total") if k not in found]
    if missing:
        raise RuntimeError(f"TFLM allocation log lacks the '{missing[0]}' line:\n{log[-2000:]}")
    return ArenaUsage(found["head"], found["tail"], found["total"])


def _measure_here(model_path: str, arena_bytes: int) -> ArenaUsage:
    """In this process: load, invoke once on zeros, capture fd 2 during print_allocations."""
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    model = Path(model_path).read_bytes()
    interp = runtime.Interpreter.from_bytes(model, arena_size=arena_bytes)
    for i in range(len(read_graph(model).inputs)):
        detail = interp.get_input_details(i)
        interp.set_input(np.zeros(detail["shape"], detail["dtype"]), i)
    interp.invoke()
    with tempfile.TemporaryFile(mode="w+b") as log_file:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log_file.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log_file.seek(0)
        log = log_file.read().decode("utf-8", "replace")
    return parse_allocations(log)


def measure_arena(
    model: bytes | str | Path, arena_bytes: int = DEFAULT_ARENA_BYTES, timeout_s: float = 300
) -> ArenaUsage:
    """Measure a model's TFLM arena in a child process (a too-small arena may crash it)."""
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(model, (bytes, bytearray)):
            path = Path(tmp) / "model.tflite"
            path.write_bytes(model)
        else:
            path = Path(model)
        cmd = [sys.executable, "-m", "deploy.tflm_measure", str(path), "--arena-bytes", str(arena_bytes)]
        root = Path(__file__).resolve().parent.parent
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(
            f"tflite-micro child failed (exit {proc.returncode}; arena {arena_bytes} bytes):\n{proc.stderr[-2000:]}"
        )
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return ArenaUsage(data["head_bytes"], data["tail_bytes"], data["total_bytes"])


def runs_in(model_path: str | Path, arena_bytes: int, timeout_s: float = 300) -> bool:
    """True when the model loads and invokes in a child process with an arena of ``arena_bytes``."""
    try:
        measure_arena(model_path, arena_bytes, timeout_s)
    except RuntimeError:
        return False
    return True


def smallest_arena_bytes(
    model: bytes | str | Path, hint_bytes: int | None = None, step_bytes: int = 16
) -> int:
    """The smallest arena (to ``step_bytes``) the model runs in, found by bisection in child processes.

    ``hint_bytes`` (e.g. the measured head + tail) narrows the search: the bounds start at a
    window around it and widen until one end fails and the other runs.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        if isinstance(model, (bytes, bytearray)):
            path.write_bytes(model)
        else:
            path.write_bytes(Path(model).read_bytes())
        if hint_bytes is None:
            hint_bytes = measure_arena(path).total_bytes
        hi = hint_bytes + 1024
        while not runs_in(path, hi):
            hi *= 2
        lo = max(step_bytes, hint_bytes - 1024)
        while lo > step_bytes and runs_in(path, lo):
            lo //= 2
        while hi - lo > step_bytes:  # invariant: lo fails, hi runs
            mid = (lo + hi) // 2
            if runs_in(path, mid):
                hi = mid
            else:
                lo = mid
        return hi


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Measure a .tflite model's TF-Lite Micro arena (host build)."
    )
    parser.add_argument("model", help="path to an int8 .tflite file")
    parser.add_argument(
        "--arena-bytes", type=int, default=DEFAULT_ARENA_BYTES, help="arena size given to TFLM"
    )
    parser.add_argument(
        "--smallest", action="store_true", help="also bisect the smallest arena that runs (child processes)"
    )
    args = parser.parse_args(argv)
    usage = _measure_here(args.model, args.arena_bytes)
    out: dict[str, int] = dict(usage.__dict__)
    if args.smallest:
        out["smallest_arena_bytes"] = smallest_arena_bytes(args.model, usage.total_bytes)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
