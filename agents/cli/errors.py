"""How every ``streamdq`` command reports user mistakes: a message and an exit code, no traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from monitor.errors import ConfigError, StreamdqError

__all__ = ["friendly"]

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn :class:`ConfigError` into exit 2 (listing each bad key) and other
    :class:`StreamdqError` into exit 1, with the message on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            click.secho(f"error: {exc.args[0]}", fg="red", err=True)
            for path, msg in exc.problems:
                click.echo(f"  {click.style(path, bold=True)}: {msg}", err=True)
            sys.exit(2)
        except StreamdqError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
