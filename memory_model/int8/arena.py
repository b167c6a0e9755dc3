"""A byte arena with a two-ended stack allocator that tracks its high-water mark.

Long-lived buffers are allocated from the bottom ("low") and short-lived ones from the top
("high"); each end must be freed in LIFO order. Freed and fresh bytes are filled with a
poison pattern, so a kernel that reads a buffer the schedule already released (or never
wrote) computes garbage instead of silently passing.
"""

from __future__ import annotations

import numpy as np

POISON = 0xA5


class ArenaOverflowError(RuntimeError):
    """The two ends of the arena collided: the schedule needs more bytes than it has."""


class Arena:
    """One preallocated uint8 array; buffers are named (offset, size) ranges in it."""

    def __init__(self, size_bytes: int) -> None:
        if size_bytes <= 0 or size_bytes % 4:
            raise ValueError(f"arena size must be a positive multiple of 4, got {size_bytes}")
        self.size_bytes = size_bytes
        self.mem = np.full(size_bytes, POISON, np.uint8)
        self.buffers: dict[str, tuple[int, int, str]] = {}
        self._stacks: dict[str, list[str]] = {"low": [], "high": []}
        self.low_top = 0
        self.high_bottom = size_bytes
        self.high_water_bytes = 0

    @property
    def used_bytes(self) -> int:
        return self.low_top + (self.size_bytes - self.high_bottom)

    def alloc(self, name: str, nbytes: int, side: str) -> None:
        if name in self.buffers:
            raise KeyError(f"buffer '{name}' is already allocated")
        if nbytes % 4:
            raise ValueError(f"buffer '{name}': {nbytes} bytes is not a multiple of 4")
        if self.low_top + nbytes > self.high_bottom:
            raise ArenaOverflowError(
                f"buffer '{name}' ({nbytes} bytes) does not fit: {self.used_bytes} of "
                f"{self.size_bytes} bytes in use"
            )
        if side == "low":
            offset, self.low_top = self.low_top, self.low_top + nbytes
        elif side == "high":
            self.high_bottom -= nbytes
            offset = self.high_bottom
        else:
            raise ValueError(f"side must be 'low' or 'high', got {side!r}")
        self.buffers[name] = (offset, nbytes, side)
        self._stacks[side].append(name)
        self.high_water_bytes = max(self.high_water_bytes, self.used_bytes)

    def free(self, name: str) -> None:
        offset, nbytes, side = self.buffers[name]
        if self._stacks[side][-1] != name:
            raise RuntimeError(
                f"free('{name}') is not LIFO on the {side} end: top is {self._stacks[side][-1]}"
            )
        self._stacks[side].pop()
        del self.buffers[name]
        self.mem[offset : offset + nbytes] = POISON
        if side == "low":
            self.low_top = offset
        else:
            self.high_bottom = offset + nbytes

    def shrink(self, name: str, nbytes: int) -> None:
        """Release the tail of the top buffer of the low end (its data stays at the front)."""
        offset, old, side = self.buffers[name]
        if side != "low" or self._stacks["low"][-1] != name or nbytes > old or nbytes % 4:
            raise RuntimeError(f"cannot shrink '{name}' to {nbytes} bytes")
        self.mem[offset + nbytes : offset + old] = POISON
        self.buffers[name] = (offset, nbytes, side)
        self.low_top = offset + nbytes

    def view(self, name: str, dtype: type = np.int8, count: int | None = None) -> np.ndarray:
        """The first ``count`` elements of buffer ``name`` as ``dtype`` (a writable view)."""
        if name not in self.buffers:
            raise KeyError(f"buffer '{name}' is not allocated")
        offset, nbytes, _ = self.buffers[name]
        arr = self.mem[offset : offset + nbytes].view(dtype)
        if count is not None:
            if count > arr.size:
                raise IndexError(f"buffer '{name}' holds {arr.size} elements, asked for {count}")
            arr = arr[:count]
        return arr
