"""Memory budgets as text ("320KB") <-> bytes, shared by every script.

Units follow the TinyEngine / TF-Lite Micro tables: 1 KB = 1 KiB = 1024 bytes and
1 MB = 1 MiB = 1024**2 bytes (an STM32F746 "320 KB SRAM" is 327,680 bytes).
"""

from __future__ import annotations

import argparse
import re
from decimal import Decimal
from fractions import Fraction

from common.errors import ConfigError

# Unit multipliers, matched case-insensitively; K/M/G are binary (1024-based) on purpose.
_UNITS_BYTES = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}
MAX_BUDGET_BYTES = 1024**4  # 1 TiB: far above any microcontroller; guards against typos
_PATTERN = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?|\.[0-9]+) ?(?P<unit>[A-Za-z]*)$")

HELP = (
    "memory budget: a number of bytes (327680) or a number with a unit B, KB, KiB, MB, MiB, GB, GiB "
    "(case-insensitive, optional single space: '320KB', '320 kB', '0.3125MB'). "
    "KB = KiB = 1024 bytes and MB = MiB = 1024**2 bytes, as in TinyEngine and TF-Lite Micro tables; "
    "the result must be a positive whole number of bytes."
)


def parse_budget(text: str) -> int:
    """Parse a budget such as ``"320KB"`` into bytes (``327680``); bad input -> ConfigError.

    Accepted: a plain non-negative decimal (no exponent, no sign), optionally followed by one
    space and a unit from :data:`HELP`. The value must be a positive whole number of bytes.
    """
    if not isinstance(text, str):
        raise ConfigError(f"budget must be text like '320KB', got {type(text).__name__}")
    stripped = text.strip()
    match = _PATTERN.match(stripped)
    if match is None:
        raise ConfigError(
            f"cannot read budget {text!r}: write a positive number with an optional unit "
            "B/KB/KiB/MB/MiB/GB/GiB, e.g. '320KB' or '327680'"
        )
    unit = match.group("unit").lower()
    if unit not in _UNITS_BYTES:
        raise ConfigError(
            f"unknown unit {match.group('unit')!r} in budget {text!r}: use B, KB, KiB, MB, MiB, GB or GiB"
        )
    value = Fraction(match.group("num")) * _UNITS_BYTES[unit]
    if value <= 0:
        raise ConfigError(f"budget {text!r} must be positive, e.g. '320KB'")
    if value.denominator != 1:
        exact = Decimal(match.group("num")) * _UNITS_BYTES[unit]  # a finite decimal, printed in full
        raise ConfigError(f"budget {text!r} is {exact} bytes, not a whole number of bytes")
    if value > MAX_BUDGET_BYTES:
        raise ConfigError(f"budget {text!r} is above the 1 TiB limit; check the unit")
    return int(value)


def parse_budget_list(text: str) -> list[int]:
    """Comma-separated budgets (``"256KB,320KB,512KB"``) in bytes; an empty item is an error."""
    items = [t.strip() for t in text.split(",")]
    if any(not t for t in items):
        raise ConfigError(f"budget list {text!r} has an empty item; write e.g. '256KB,320KB,512KB'")
    return [parse_budget(t) for t in items]


def argparse_budget(text: str) -> int:
    """``type=`` for argparse: like :func:`parse_budget` but raises ArgumentTypeError."""
    try:
        return parse_budget(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def format_bytes(n_bytes: int | float) -> str:
    """Human-readable size in binary units: ``327680 -> '320.0 KB'``, ``512 -> '512 B'``."""
    n = float(n_bytes)
    if abs(n) < 1024:
        return f"{int(n)} B" if n == int(n) else f"{n:.1f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")
