"""Multi-scale supernet training (MobileViT's multi-scale sampler, in tokens): every step
trains one patch size, and the batch is sized so that tokens x batch stays about constant.

The image size is fixed; the patch size sets the token count. Each global step's patch size
comes from a generator seeded by ``(seed, step)`` (:func:`step_patch_size`), so it is the same
on every rank and after a resume. The batch for ``tokens`` tokens is
``round(base_batch * base_tokens / tokens)`` (:func:`scaled_batch_size`), where
``base_tokens`` is the token count of ``base_patch`` (default: the smallest patch, i.e. the most
tokens, so no step holds more activations than ``base_batch`` images at the largest token
count). An epoch has a fixed number of steps (the data divided by the mean batch), so the
learning-rate schedule does not change; images are drawn from seeded permutations in turn.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from common.errors import ConfigError
from search_space.config import SubnetConfig

_STREAM = 0x5CA1E  # separates these draws from the other per-step generators


def num_tokens(img_size: int, patch_size: int, cls_token: bool) -> int:
    """Tokens of a ViT with bottom/right padding to whole patches (as ``SubnetConfig``)."""
    return (-(-img_size // patch_size)) ** 2 + int(cls_token)


def step_patch_size(seed: int, step: int, patch_sizes: Sequence[int]) -> int:
    """The patch size of global step ``step`` (uniform over ``patch_sizes``)."""
    rng = np.random.default_rng([seed, step, _STREAM])
    return int(patch_sizes[int(rng.integers(len(patch_sizes)))])


def scaled_batch_size(tokens: int, base_batch: int, base_tokens: int) -> int:
    """``base_batch`` scaled so that tokens x batch stays about ``base_tokens x base_batch``."""
    return max(1, round(base_batch * base_tokens / tokens))


class MultiScaleBatchSampler(Sampler[list[int]]):
    """Yields each step's list of dataset indices; the batch size follows the step's patch size.

    ``patches_yielded`` holds the patch size of every batch handed out and not yet claimed by
    :meth:`constrain` (a FIFO in step order, so DataLoader prefetching keeps it aligned).
    """

    def __init__(
        self,
        num_samples: int,
        base_batch: int,
        patch_sizes: Sequence[int],
        img_size: int,
        cls_token: bool = True,
        seed: int = 0,
        base_patch: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not patch_sizes:
            raise ConfigError("multi-scale training needs at least one patch size")
        if num_samples < 1 or base_batch < 1:
            raise ConfigError(
                f"multi-scale training needs data and a batch size, got {num_samples}, {base_batch}"
            )
        self.patch_sizes = tuple(sorted(set(int(p) for p in patch_sizes)))
        base_patch = min(self.patch_sizes) if base_patch is None else base_patch
        self.base_tokens = num_tokens(img_size, base_patch, cls_token)
        self.batch_by_patch = {
            p: scaled_batch_size(num_tokens(img_size, p, cls_token), base_batch, self.base_tokens)
            for p in self.patch_sizes
        }
        self.num_samples, self.seed, self.rank, self.world_size = num_samples, seed, rank, world_size
        mean_batch = sum(self.batch_by_patch.values()) / len(self.batch_by_patch)
        self.steps_per_epoch = max(1, math.ceil(num_samples / world_size / mean_batch))
        self.epoch = 0
        self.patches_yielded: deque[int] = deque()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.patches_yielded.clear()

    def __len__(self) -> int:
        return self.steps_per_epoch

    def plan(self, epoch: int) -> list[tuple[int, int]]:
        """(patch size, batch size) of every step of ``epoch``."""
        first = epoch * self.steps_per_epoch
        out = []
        for k in range(self.steps_per_epoch):
            p = step_patch_size(self.seed, first + k, self.patch_sizes)
            out.append((p, self.batch_by_patch[p]))
        return out

    def _indices(self, epoch: int) -> Iterator[int]:
        round_ = 0
        while True:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 1009 + round_)
            yield from torch.randperm(self.num_samples, generator=g)[self.rank :: self.world_size].tolist()
            round_ += 1

    def __iter__(self) -> Iterator[list[int]]:
        indices = self._indices(self.epoch)
        for patch, batch in self.plan(self.epoch):
            self.patches_yielded.append(patch)
            yield [next(indices) for _ in range(batch)]

    def constrain(self, cfgs: list[SubnetConfig]) -> list[SubnetConfig]:
        """The step's subnets with the patch size of the next batch handed out."""
        if not self.patches_yielded:
            raise RuntimeError("no multi-scale batch is waiting for its subnets")
        patch = self.patches_yielded.popleft()
        return [replace(c, patch_size=patch) for c in cfgs]


def multiscale_loader(loader: DataLoader, sampler: MultiScaleBatchSampler) -> DataLoader:
    """``loader``'s dataset, transforms and collation, batched by ``sampler``."""
    return DataLoader(
        loader.dataset,
        batch_sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        persistent_workers=loader.num_workers > 0,
    )
