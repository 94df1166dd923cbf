"""The errors i2i raises for things a user can fix, and the one list formatter they share.

Every user-facing failure is an :class:`I2IError`. The command line turns exactly these into one
line with the fix (exit status 2 for a wrong option or config value, 1 for work that failed); any
other exception is a bug and keeps its traceback. Each class also derives from the built-in
exception a Python caller would expect (``ValueError`` for a bad value, ``RuntimeError`` for a
failed run), so ``except ValueError`` keeps working in library code.

This module imports nothing from i2i or torch: every layer may raise these.
"""
from __future__ import annotations

from typing import Sequence

__all__ = [
    "I2IError",
    "UsageError",
    "ConfigError",
    "DeviceError",
    "DataError",
    "ModelError",
    "VideoError",
    "TrainingError",
    "format_problems",
]


class I2IError(Exception):
    """Something the user can fix; the message names the problem and the fix."""

    #: The command line's exit status: 1 for work that failed.
    exit_code = 1


class UsageError(I2IError, ValueError):
    """A command-line option or argument has a value that cannot work."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration key or value is wrong; the message says which and how to fix it."""


class DeviceError(UsageError):
    """A device or precision that does not exist, or is not available on this machine."""


class DataError(I2IError, ValueError):
    """Input images, folders or data sets are not usable; the message lists the offending files."""


class ModelError(I2IError, ValueError):
    """A model name, model file or its arguments cannot be used."""


class VideoError(I2IError, ValueError):
    """A video, frame folder or encoder setting cannot be used."""


class TrainingError(I2IError, RuntimeError):
    """Training cannot go on; the message says why and what to change."""


def format_problems(items: Sequence[str], limit: int = 20, bullet: str = "") -> str:
    """``items`` one per line, indented; past ``limit`` lines, a count of the rest.

    Used wherever an error lists files (mismatched pairs, unreadable images, output collisions),
    so a folder of 10,000 bad files still gives a short message.
    """
    shown = [f"  {bullet}{item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"  ... and {len(items) - limit} more")
    return "\n".join(shown)
