"""Subcommands whose work needs heavy libraries (eth-account, numpy, sgp4, matplotlib)
register their parsers from a light module and import the module doing the work only
when that subcommand runs, so ``orbital --help`` and ``orbital verify`` start fast."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable


def lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A handler that imports ``module`` and calls its ``function`` with the arguments."""
    def run(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), function)(args))
    run.__qualname__ = f"lazy({module}.{function})"
    return run
