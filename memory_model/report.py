"""`MemoryReport`: a peak-SRAM estimate with the per-op breakdown that explains it.

Every schedule (``paper``, ``mcu``, ``tflm``) returns this type, so scripts and humans read
all of them the same way: which op sets the peak and which buffers are live there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OpMemory:
    """One op of a schedule: the buffers live while it runs, in bytes."""

    name: str
    live: dict[str, int]  # buffer name -> bytes

    @property
    def total_bytes(self) -> int:
        return sum(self.live.values())


@dataclass(frozen=True)
class MemoryReport:
    """Peak SRAM of one subnet under one schedule, with the ops that lead to it."""

    schedule: str
    peak_bytes: int
    ops: tuple[OpMemory, ...]
    options: dict[str, object] = field(default_factory=dict)

    @property
    def peak_op(self) -> OpMemory:
        """The first op whose live total equals the peak."""
        for op in self.ops:
            if op.total_bytes == self.peak_bytes:
                return op
        return max(self.ops, key=lambda o: o.total_bytes)

    @property
    def peak_kb(self) -> float:
        return self.peak_bytes / 1024

    def table(self, top: int | None = None) -> str:
        """A fixed-width table of the ops (all, or the ``top`` largest), peak marked with '*'."""
        ops = list(self.ops)
        if top is not None:
            ops = sorted(ops, key=lambda o: -o.total_bytes)[:top]
        peak_name = self.peak_op.name
        width = max([len(o.name) for o in ops] + [2])
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        lines = [
            f"schedule {self.schedule}{f' ({opts})' if opts else ''}: peak {self.peak_bytes:,} bytes "
            f"({self.peak_kb:.1f} KB) at {peak_name}",
            f"  {'op'.ljust(width)}  {'bytes':>10}  live buffers",
        ]
        for op in ops:
            mark = "*" if op.name == peak_name else " "
            bufs = ", ".join(f"{k}={v:,}" for k, v in op.live.items())
            lines.append(f"{mark} {op.name.ljust(width)}  {op.total_bytes:>10,}  {bufs}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table(top=10)
