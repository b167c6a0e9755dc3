"""Buffer offsets of the ``mcu`` schedule, fixed at generation time.

The op list of `memory_model.mcu.build_ops` is replayed on the numpy executor's own two-ended
stack (`memory_model.int8.arena.Arena`), so every buffer of every op gets the offset the
reference executor gives it, inside one arena of exactly the schedule's peak.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from memory_model.int8.arena import Arena
from memory_model.mcu import Op, align4, build_ops
from search_space.config import SubnetConfig


@dataclass(frozen=True)
class PlacedOp:
    op: Op
    offsets: dict[str, int]  # every live buffer's offset while the op runs (bytes)


@dataclass(frozen=True)
class ArenaPlan:
    ops: tuple[PlacedOp, ...]
    arena_bytes: int
    input_offset: int  # buffer I: the whole image, or the band of one row of patches (stream)
    logits_offset: int


def patch_stage_bytes(cfg: SubnetConfig, subkernel: int) -> int:
    """Staging bytes of the patch embedding with weights in SRAM: bias + one sub-kernel."""
    k = min(subkernel, cfg.patch_size)
    return 4 * cfg.embed_dim + align4(cfg.embed_dim * cfg.in_chans * k * k)


def schedule(cfg: SubnetConfig, weights_in_sram: bool, subkernel: int = 4, input: str = "whole") -> list[Op]:
    """`build_ops`, with the patch embedding's staging buffer sized for ``subkernel``; ``input``
    is the schedule's input mode (``"stream"``: one row of patches in a band buffer)."""
    ops = build_ops(cfg, weights_in_sram, input=input)
    if not weights_in_sram:
        return ops
    out = []
    for op in ops:
        if op.kind in ("patch_embed", "patch_embed_stream"):
            nbytes = patch_stage_bytes(cfg, subkernel)
            alloc = tuple((b, nbytes if b == "W" else n, s) for b, n, s in op.alloc)
            op = replace(op, alloc=alloc, live={**op.live, "W": nbytes})
        out.append(op)
    return out


def _replay(ops: list[Op], size_bytes: int) -> tuple[Arena, list[PlacedOp]]:
    arena, placed = Arena(size_bytes), []
    for op in ops:
        for name, nbytes, side in op.alloc:
            arena.alloc(name, nbytes, side)
        placed.append(PlacedOp(op, {name: off for name, (off, _, _) in arena.buffers.items()}))
        for name in op.free:
            arena.free(name)
        for name, nbytes in op.shrink:
            arena.shrink(name, nbytes)
    return arena, placed


def plan_arena(ops: list[Op]) -> ArenaPlan:
    """Offsets of every buffer in an arena of exactly the schedule's peak."""
    loose, _ = _replay(ops, sum(n for op in ops for _, n, _ in op.alloc))
    arena, placed = _replay(ops, loose.high_water_bytes)
    assert arena.high_water_bytes == arena.size_bytes
    return ArenaPlan(tuple(placed), arena.size_bytes, placed[0].offsets["I"], arena.buffers["logits"][0])
