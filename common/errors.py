"""The one error type for bad user input (configs, spaces, budgets, checkpoints), and how the
command-line entry points report it: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ConfigError(ValueError):
    """A user-facing, one-line error: what is wrong and how to fix it.

    Scripts catch it, print ``error: <message>`` and exit with code 2.
    """


def one_line(exc: BaseException) -> str:
    """The message of a user-facing error as one line. An error raised in a DataLoader worker
    reaches the main process with the worker's traceback in its text: keep its last line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and any(ln.startswith("Original Traceback") for ln in lines):
        name, _, message = lines[-1].partition(": ")  # "package.module.ErrorType: message"
        return message if message and name.replace(".", "").isidentifier() else lines[-1]
    return lines[0]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (``prog: error: ...; see --help``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):  # e.g. --budget -1KB: argparse sees an option
            message += " (write a value that starts with '-' as --option=VALUE)"
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def exit_on_error(exc: BaseException) -> int:
    """Print ``error: <one line>`` on stderr and return the bad-input exit code (2)."""
    print(f"error: {one_line(exc)}", file=sys.stderr)
    return 2
