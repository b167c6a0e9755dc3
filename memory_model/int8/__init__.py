"""Reference int8 inference in a byte arena, following the ``mcu`` schedule (numpy only;
calibration from a torch model lives in `memory_model.int8.calibrate`)."""

from memory_model.int8.arena import Arena, ArenaOverflowError
from memory_model.int8.executor import Int8Result, run_int8
from memory_model.int8.quant import QuantViT, activation_names, quantize_vit, random_quant_vit

__all__ = [
    "Arena",
    "ArenaOverflowError",
    "Int8Result",
    "QuantViT",
    "activation_names",
    "quantize_vit",
    "random_quant_vit",
    "run_int8",
]
