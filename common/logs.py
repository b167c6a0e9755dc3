"""The project's one log setup: the ``mcunas`` loggers to stderr (and a file), time-stamped."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")


def setup_logging(file: Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send the project's loggers (``mcunas.*``) to stderr and, with ``file``, to that file too;
    other libraries' loggers are left alone. Calling it again replaces the handlers."""
    root = logging.getLogger("mcunas")
    root.handlers.clear()
    root.setLevel(level)
    root.propagate = False
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file))
    for h in handlers:
        h.setFormatter(FORMAT)
        root.addHandler(h)
    return root
