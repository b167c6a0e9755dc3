"""Peak SRAM of a subnet as pure functions of its `SubnetConfig`: numpy code that never imports
torch (tests/test_layers.py checks it). The three modules that read torch models import torch
themselves and are not loaded here: `memory_model.profile` (any model's int8 graph, for the seed
baselines), `memory_model.lowering` (a traced graph to TF-Lite's ops) and
`memory_model.int8.calibrate` (activation scales from real images)."""

from memory_model.batch import ConfigBatch, encode_configs, enumerate_batch, sample_batch
from memory_model.mcu import build_ops, mcu_peak_bytes, mcu_report
from memory_model.paper import paper_peak_bytes, paper_report
from memory_model.report import MemoryReport, OpMemory
from memory_model.schedules import (
    SCHEDULES,
    Schedule,
    ShareEstimate,
    get_schedule,
    peak_bytes_batch,
    peak_sram,
    share_within_budget,
)

__all__ = [
    "SCHEDULES",
    "ConfigBatch",
    "MemoryReport",
    "OpMemory",
    "Schedule",
    "ShareEstimate",
    "build_ops",
    "encode_configs",
    "enumerate_batch",
    "get_schedule",
    "mcu_peak_bytes",
    "mcu_report",
    "paper_peak_bytes",
    "paper_report",
    "peak_bytes_batch",
    "peak_sram",
    "sample_batch",
    "share_within_budget",
]

# Budgets, TF-Lite Micro's planner and the tflm schedule, flash bytes.
from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import argparse_budget, format_bytes, parse_budget
from memory_model.flash import FlashReport, flash_bytes, flash_report, parameter_count
from memory_model.planner import Buffer, Plan, greedy_plan, max_live_bytes
from memory_model.tflm import tflm_graph, tflm_plan, tflm_report

__all__ += [
    "BUDGET_HELP",
    "Buffer",
    "FlashReport",
    "Plan",
    "argparse_budget",
    "flash_bytes",
    "flash_report",
    "format_bytes",
    "greedy_plan",
    "max_live_bytes",
    "parameter_count",
    "parse_budget",
    "tflm_graph",
    "tflm_plan",
    "tflm_report",
]
