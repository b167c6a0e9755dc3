"""The one error type for bad user input (configs, spaces, budgets, checkpoints)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user-facing, one-line error: what is wrong and how to fix it.

    Scripts catch it, print ``error: <message>`` and exit with code 2.
    """
