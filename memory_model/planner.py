"""TF-Lite Micro's greedy memory planner, emulated in Python to the byte.

The rules (TFLM ``GreedyMemoryPlanner`` fed by ``AllocationInfoBuilder`` / ``CreatePlan``):

* Every planned buffer has a size and a lifetime ``[first_op, last_op]`` (inclusive) in
  *allocation scopes*: scope 0 is the start of the subgraph, operator ``i`` is scope ``i + 1``.
  Two buffers conflict when their lifetimes intersect (touching at one scope counts).
* Sizes are rounded up to 16 bytes (``kBufferAlignment``) before planning.
* Buffers with an offline offset keep it and are placed first, in the order given. The
  others are ordered by size, largest first, with a stable sort over the buffer list
  *reversed*: among equal sizes the buffer added last is placed first.
* The first buffer sits at offset 0. Each next buffer walks the already placed buffers that
  overlap it in time, in order of offset, and takes the first gap between the running end
  offset and the next such buffer that is large enough; otherwise it goes after the last one.
* The head (what TFLM reports as "Arena allocation head", less kernel-independent overhead)
  is the highest end offset.

:func:`max_live_bytes` gives the lower bound no placement can beat: the largest total size of
buffers live at one scope.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

BUFFER_ALIGNMENT_BYTES = 16  # TFLM kBufferAlignment


def align_up(n_bytes: int, alignment: int = BUFFER_ALIGNMENT_BYTES) -> int:
    """Round ``n_bytes`` up to a multiple of ``alignment``."""
    return -(-n_bytes // alignment) * alignment


@dataclass(frozen=True)
class Buffer:
    """One planned buffer: raw size in bytes and inclusive lifetime in allocation scopes."""

    name: str
    size_bytes: int
    first_op: int
    last_op: int
    offline_offset: int | None = None  # fixed offset from an offline plan; None = planned here

    def __post_init__(self) -> None:
        if self.size_bytes < 0:
            raise ValueError(f"buffer {self.name!r}: negative size {self.size_bytes}")
        if not 0 <= self.first_op <= self.last_op:
            raise ValueError(f"buffer {self.name!r}: bad lifetime [{self.first_op}, {self.last_op}]")

    def overlaps(self, other: Buffer) -> bool:
        """True when the two lifetimes share at least one scope."""
        return not (self.first_op > other.last_op or other.first_op > self.last_op)


@dataclass(frozen=True)
class Plan:
    """Offsets chosen by the planner, in the order the buffers were given."""

    buffers: tuple[Buffer, ...]
    aligned_sizes_bytes: tuple[int, ...]
    offsets_bytes: tuple[int, ...]
    head_bytes: int

    def live_bytes_at(self, scope: int) -> int:
        """Sum of aligned sizes of buffers live at ``scope``."""
        return sum(
            s
            for b, s in zip(self.buffers, self.aligned_sizes_bytes, strict=True)
            if b.first_op <= scope <= b.last_op
        )

    def peak_scope(self) -> int:
        """A scope where the top-most buffer (the one defining the head) is live."""
        ends = [o + s for o, s in zip(self.offsets_bytes, self.aligned_sizes_bytes, strict=True)]
        return self.buffers[ends.index(self.head_bytes)].first_op if ends else 0


def _placement_order(buffers: list[Buffer], sizes: list[int]) -> list[int]:
    """Indices in TFLM's placement order: offline buffers first, then online by size desc."""
    offline = [i for i, b in enumerate(buffers) if b.offline_offset is not None]
    online_reversed = [i for i in reversed(range(len(buffers))) if buffers[i].offline_offset is None]
    # Python's sort is stable, like TFLM's bubble sort that only swaps strictly smaller values.
    online_sorted = sorted(online_reversed, key=lambda i: -sizes[i])
    return offline + online_sorted


def greedy_plan(buffers: list[Buffer] | tuple[Buffer, ...], alignment: int = BUFFER_ALIGNMENT_BYTES) -> Plan:
    """Place ``buffers`` exactly as TFLM's GreedyMemoryPlanner does; return offsets and head."""
    buffers = list(buffers)
    sizes = [align_up(b.size_bytes, alignment) for b in buffers]
    offsets = [-1] * len(buffers)
    placed_offsets: list[int] = []  # offset-ordered list of placed buffers (ties: insertion order)
    placed_ids: list[int] = []
    for i in _placement_order(buffers, sizes):
        wanted = buffers[i]
        if wanted.offline_offset is not None:
            candidate = wanted.offline_offset
        else:
            candidate = 0
            for j in placed_ids:
                if not wanted.overlaps(buffers[j]):
                    continue
                if offsets[j] - candidate >= sizes[i]:
                    break
                candidate = max(candidate, offsets[j] + sizes[j])
        offsets[i] = candidate
        pos = bisect.bisect_right(placed_offsets, candidate)
        placed_offsets.insert(pos, candidate)
        placed_ids.insert(pos, i)
    head = max((o + s for o, s in zip(offsets, sizes, strict=True)), default=0)
    return Plan(tuple(buffers), tuple(sizes), tuple(offsets), head)


def max_live_bytes(
    buffers: list[Buffer] | tuple[Buffer, ...], alignment: int = BUFFER_ALIGNMENT_BYTES
) -> int:
    """Lower bound of any placement: the largest aligned total of buffers live at one scope."""
    events: dict[int, int] = {}
    for b in buffers:
        size = align_up(b.size_bytes, alignment)
        events[b.first_op] = events.get(b.first_op, 0) + size
        events[b.last_op + 1] = events.get(b.last_op + 1, 0) - size
    live = peak = 0
    for scope in sorted(events):
        live += events[scope]
        peak = max(peak, live)
    return peak
