"""Pieces every command module shares: click settings and the user-error wrapper.

Nothing here imports torch, so ``i2i --help`` stays fast.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable

import click

from i2i.errors import I2IError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ReportedError(click.ClickException):
    """An :class:`~i2i.errors.I2IError` shown as one line, with the error's exit status."""

    def __init__(self, error: I2IError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report i2i's own errors (:class:`~i2i.errors.I2IError`) as one clear line, without a
    traceback: exit status 2 for a wrong option or config value, 1 for work that failed.

    Any other exception is a bug and keeps its traceback. Set I2I_DEBUG=1 to see the traceback of
    a reported error too.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except I2IError as exc:
            if os.environ.get("I2I_DEBUG"):
                raise
            raise ReportedError(exc) from None

    return wrapper
