"""TF-Lite Micro's greedy planner, checked on cases derived by hand."""

from __future__ import annotations

import random

import pytest

from memory_model.planner import Buffer, align_up, greedy_plan, max_live_bytes


def test_align_up_rounds_to_16() -> None:
    assert [align_up(n) for n in (0, 1, 15, 16, 17, 32, 33)] == [0, 16, 16, 16, 32, 32, 48]


def test_chain_reuses_the_freed_slot() -> None:
    # A feeds B feeds C. A (112 after rounding) at 0; B overlaps A at scope 1 -> after A at 112;
    # C only overlaps B, and the gap [0, 112) below B holds it -> 0. Head = A + B at scope 1.
    bufs = [Buffer("a", 100, 0, 1), Buffer("b", 64, 1, 2), Buffer("c", 32, 2, 3)]
    plan = greedy_plan(bufs)
    assert plan.aligned_sizes_bytes == (112, 64, 32)
    assert plan.offsets_bytes == (0, 112, 0)
    assert plan.head_bytes == 176 == max_live_bytes(bufs)


def test_residual_and_equal_size_tie_break() -> None:
    # Equal sizes are placed in reverse order of addition: out, b, a, then x.
    # out -> 0; b overlaps out -> 64; a overlaps only b, fits below it -> 0;
    # x (the residual, live 0..3) overlaps out, a and b -> after them at 128.
    bufs = [Buffer("x", 64, 0, 3), Buffer("a", 64, 1, 2), Buffer("b", 64, 2, 3), Buffer("out", 64, 3, 4)]
    plan = greedy_plan(bufs)
    assert plan.offsets_bytes == (128, 0, 64, 0)
    assert plan.head_bytes == 192 == max_live_bytes(bufs)


def test_overlapping_lifetimes_can_fragment_above_max_live() -> None:
    # d (48) -> 0; c (live 1) misses d -> 0; b (1..3) overlaps d and c -> 48;
    # a (1..2) overlaps c [0,32) and b [48,80): the 16-byte gap is too small -> 80.
    bufs = [Buffer("a", 32, 1, 2), Buffer("b", 32, 1, 3), Buffer("c", 32, 1, 1), Buffer("d", 48, 3, 3)]
    plan = greedy_plan(bufs)
    assert plan.offsets_bytes == (80, 48, 0, 0)
    assert plan.head_bytes == 112
    assert max_live_bytes(bufs) == 96  # a + b + c at scope 1


def test_rounding_changes_the_head() -> None:
    bufs = [Buffer("a", 1, 0, 1), Buffer("b", 17, 1, 2)]
    plan = greedy_plan(bufs)
    assert plan.head_bytes == 48  # 16 + 32, not 18
    assert greedy_plan(bufs, alignment=1).head_bytes == 18


def test_touching_lifetimes_conflict() -> None:
    # [0, 1] and [1, 2] share scope 1, so they may not share memory.
    plan = greedy_plan([Buffer("a", 16, 0, 1), Buffer("b", 16, 1, 2)])
    assert sorted(plan.offsets_bytes) == [0, 16]
    disjoint = greedy_plan([Buffer("a", 16, 0, 0), Buffer("b", 16, 1, 2)])
    assert disjoint.offsets_bytes == (0, 0)


def test_offline_offsets_are_kept_and_placed_first() -> None:
    bufs = [Buffer("online", 32, 0, 1), Buffer("fixed", 16, 0, 1, offline_offset=16)]
    plan = greedy_plan(bufs)
    assert plan.offsets_bytes == (32, 16)  # [0, 16) is too small for 32 bytes
    assert plan.head_bytes == 64


def test_empty_plan() -> None:
    assert greedy_plan([]).head_bytes == 0
    assert max_live_bytes([]) == 0


def test_bad_lifetime_rejected() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        Buffer("x", 16, 3, 2)


def test_random_plans_never_overlap_and_bound_below() -> None:
    rng = random.Random(0)
    for _ in range(200):
        bufs = []
        for i in range(rng.randint(1, 12)):
            first = rng.randint(0, 8)
            bufs.append(Buffer(f"t{i}", rng.randint(1, 200), first, first + rng.randint(0, 4)))
        plan = greedy_plan(bufs)
        spans = list(zip(plan.buffers, plan.offsets_bytes, plan.aligned_sizes_bytes, strict=True))
        for i, (a, oa, sa) in enumerate(spans):
            assert oa % 16 == 0
            for b, ob, sb in spans[i + 1 :]:
                if a.overlaps(b):
                    assert oa + sa <= ob or ob + sb <= oa, (a, b)
        assert plan.head_bytes >= max_live_bytes(bufs)
        assert plan.head_bytes == max(o + s for _, o, s in spans)
