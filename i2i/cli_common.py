"""Pieces every command module shares: click settings and the user-error wrapper."""
from __future__ import annotations

import functools
import os
from typing import Any, Callable

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report user mistakes as one clear line and exit 1, without a traceback.

    Set I2I_DEBUG=1 to see the traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from i2i.trainer import TrainingError

        try:
            return fn(*args, **kwargs)
        except (ValueError, KeyError, FileNotFoundError, TrainingError) as exc:
            if os.environ.get("I2I_DEBUG"):
                raise
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise click.ClickException(str(message)) from None

    return wrapper
