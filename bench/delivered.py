"""What a chosen point's supernet delivers: a finished visit re-scored on the test split.

The test split is never used by any choice; the subnets are drawn by one sample seed shared by
every job it is asked of (not by the job's training seed), so jobs of different seeds are scored
on the same architectures. Used by ``bench/space_vs_grid.py`` only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.files import atomic_write_text
from search.space.visit import JOB_FILE, RESULT_FILE, score_job

DELIVERED_FILE = "delivered.json"  # the cache, in the job's directory


def delivered_score(job_dir: str | Path, subnets: int, sample_seed: int = 0) -> dict[str, Any]:
    """A, R and S of a finished job's supernet on the test split, with ``subnets`` in-budget
    subnets drawn by ``sample_seed``. Cached in the job dir (``delivered.json``)."""
    job_dir = Path(job_dir)
    if not (job_dir / RESULT_FILE).exists():
        raise FileNotFoundError(f"{job_dir} has no {RESULT_FILE}: the job is not finished")
    spec = json.loads((job_dir / JOB_FILE).read_text())
    if spec["score"] is None:
        raise ValueError(f"{job_dir} is a training-only job: there is no budget to score it against")
    key = {"split": "test", "subnets": subnets, "sample_seed": sample_seed}
    cache = job_dir / DELIVERED_FILE
    if cache.exists() and (hit := json.loads(cache.read_text())).get("key") == key:
        return hit
    result = score_job(
        job_dir, {**spec, "score": {**spec["score"], "eval_subnets": subnets}}, "test", sample_seed
    )
    result = {"key": key, **result}
    atomic_write_text(cache, json.dumps(result, indent=1))
    return result
