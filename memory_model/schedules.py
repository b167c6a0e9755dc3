"""One entry point for peak SRAM under any schedule: ``paper``, ``mcu`` or ``tflm``.

``paper``: MCUFormer's published per-FC-layer formula (`memory_model.paper`).
``mcu``: the full int8 schedule with MCUFormer's techniques (`memory_model.mcu`); option
``weights_in_sram``. ``tflm``: TF-Lite Micro's greedy planner on the same subnet
(`memory_model.tflm`, imported only when asked for).
"""

from __future__ import annotations

from typing import Any

from memory_model.mcu import mcu_report
from memory_model.paper import paper_report
from memory_model.report import MemoryReport
from search_space.config import SubnetConfig
from search_space.errors import ConfigError

SCHEDULES = ("mcu", "paper", "tflm")
_OPTIONS = {"mcu": {"weights_in_sram"}, "paper": set(), "tflm": set()}


def peak_sram(cfg: SubnetConfig, schedule: str = "mcu", **options: Any) -> MemoryReport:
    """Peak SRAM of ``cfg`` under ``schedule`` with its per-op breakdown."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown memory schedule '{schedule}'; choose one of {list(SCHEDULES)}")
    unknown = sorted(set(options) - _OPTIONS[schedule])
    if unknown:
        valid = sorted(_OPTIONS[schedule]) or "none"
        raise ConfigError(f"schedule '{schedule}' has no option '{unknown[0]}' (valid: {valid})")
    if schedule == "mcu":
        return mcu_report(cfg, **options)
    if schedule == "paper":
        return paper_report(cfg)
    from memory_model.tflm import tflm_report

    return tflm_report(cfg)
