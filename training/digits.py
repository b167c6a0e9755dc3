"""The embedded default dataset: scikit-learn's 8x8 handwritten digits as small RGB images.

Fixed splits of the 1,797 images: ``rng = np.random.default_rng(0); perm =
rng.permutation(1797)``; test = perm[:360], holdout = perm[360:540], train = perm[540:].
Pixels 0..16 are scaled to 0..255, upscaled with PIL's bilinear filter to ``img_size`` and
replicated to three channels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from common.errors import ConfigError

NUM_DIGITS = 1797
SPLITS = {"test": (0, 360), "holdout": (360, 540), "train": (540, NUM_DIGITS)}


def split_indices(split: str) -> np.ndarray:
    """Indices into `sklearn.datasets.load_digits()` of ``split``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown digits split '{split}'; choose one of {sorted(SPLITS)}")
    start, stop = SPLITS[split]
    return np.random.default_rng(0).permutation(NUM_DIGITS)[start:stop]


def load_digits_split(split: str, img_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, img_size, img_size, 3), int64 labels) of one fixed split."""
    if not isinstance(img_size, int) or isinstance(img_size, bool) or img_size < 1:
        raise ConfigError(f"img_size must be a positive integer, got {img_size!r}")
    idx = split_indices(split)
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.round(digits.images[idx] * (255.0 / 16.0)).astype(np.uint8)
    images = np.empty((len(idx), img_size, img_size, 3), np.uint8)
    for i, im in enumerate(small):
        big = np.asarray(Image.fromarray(im).resize((img_size, img_size), Image.BILINEAR))
        images[i] = big[:, :, None]
    return images, digits.target[idx].astype(np.int64)
