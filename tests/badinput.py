"""Shared checks of the bad-input suites (tests/test_bad_input_*.py): an entry point given bad
input exits with code 2, prints exactly one line on stderr naming the problem, shows no
traceback, and leaves its output directory as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from PIL import Image


def snapshot(*roots: Path) -> dict[str, tuple[int, int] | None]:
    """Every file under ``roots`` with its size and mtime (``None`` for a missing root)."""
    out: dict[str, tuple[int, int] | None] = {}
    for root in roots:
        if not root.exists():
            out[str(root)] = None
        elif root.is_file():
            out[str(root)] = (root.stat().st_size, root.stat().st_mtime_ns)
        else:
            for f in sorted(root.rglob("*")):
                out[str(f)] = (f.stat().st_size, f.stat().st_mtime_ns) if f.is_file() else (0, 0)
    return out


def assert_refused(
    main: Callable[[list[str]], int], argv: list[str], expect: str, capsys, *watch: Path
) -> str:
    """Run ``main(argv)`` and check the bad-input contract; returns the error line."""
    before = snapshot(*watch)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert code == 2, f"exit code {code} for {argv}; stderr:\n{captured.err}"
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, f"expected one line on stderr for {argv}, got:\n{captured.err}"
    assert expect in lines[0], f"{expect!r} not in {lines[0]!r}"
    assert snapshot(*watch) == before, f"{argv} changed {watch}"
    return lines[0]


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def bad_files(root: Path) -> dict[str, Path]:
    """Malformed config files: missing, a directory, binary, empty, a duplicated key, bad YAML."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "a_dir").mkdir(exist_ok=True)
    (root / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (root / "empty.yaml").write_text("")
    (root / "dup.yaml").write_text("seed: 0\nseed: 1\n")
    (root / "broken.yaml").write_text("seed: [0, 1\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    return {
        "missing": root / "missing.yaml",
        "dir": root / "a_dir",
        "binary": root / "binary.yaml",
        "empty": root / "empty.yaml",
        "dup": root / "dup.yaml",
        "broken": root / "broken.yaml",
        "list": root / "list.yaml",
    }


BAD_FILE_MESSAGES = {
    "missing": "does not exist",
    "dir": "is a directory",
    "binary": "is not a text",
    "empty": "is empty",
    "dup": "key 'seed' appears twice",
    "broken": "is not valid YAML",
    "list": "must hold a mapping",
}


def image_folder(root: Path, classes: int = 3, per_class: int = 6, size: int = 40, seed: int = 0) -> Path:
    """A tiny ImageNet-style folder (train/ and val/ of RGB JPEGs, one colour theme per class)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("val", 2)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                img[..., c % 3] += np.uint8(150)
                Image.fromarray(img).save(folder / f"{i}.jpg", quality=90)
    return root
