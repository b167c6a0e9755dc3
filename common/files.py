"""Files every stage writes: atomically (a temporary beside the target, then a rename), into an
output directory checked up front, with a killed run's temporaries cleaned on the next start."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from common.errors import ConfigError

TMP_SUFFIX = ".tmp"  # temporaries of atomic writes: .<name>.<random>.tmp


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file beside ``path``, then rename: a reader sees the old file or
    the new one, never a part. A failed write (full disk, quota) leaves the old file and no
    temporary behind and is one `ConfigError` line."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:120]
        raise ConfigError(
            f"cannot write {path} ({reason}); free disk space or fix the location, then rerun "
            "(the run continues from its last complete checkpoint)"
        ) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def prepare_output(path: str | Path, what: str = "output directory") -> Path:
    """Make sure ``path`` is a writable directory (created if missing) and remove the temporary
    files a killed run left in it; a file in the way or an unwritable place is a `ConfigError`."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a directory; pass a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{what} {path} cannot be written ({exc.strerror}); choose another location"
        ) from None
    for stale in path.glob(f".*{TMP_SUFFIX}"):
        if stale.is_file():
            stale.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(Path(path), lambda fh: fh.write(text.encode()))


def atomic_copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin:
        atomic_write(Path(dst), lambda fh: shutil.copyfileobj(fin, fh))
