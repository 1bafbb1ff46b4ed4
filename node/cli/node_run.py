"""The work behind ``orbital node`` (imported only when such a subcommand runs)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).resolve().parents[2]


def _benchmark(name: str) -> ModuleType:
    """``benchmarks.<name>`` from the source checkout this package lives in."""
    if not (SOURCE / "benchmarks" / f"{name}.py").is_file():
        raise FileNotFoundError(f"benchmarks/{name}.py is not beside this installation "
                                f"({SOURCE}); run from a source checkout")
    if str(SOURCE) not in sys.path:
        sys.path.insert(0, str(SOURCE))
    return importlib.import_module(f"benchmarks.{name}")


def _gossip_bench(args: argparse.Namespace) -> int:
    try:
        bench = _benchmark("gossip")
    except FileNotFoundError as exc:
        print(f"orbital: {exc}", file=sys.stderr)
        return 2
    argv = [flag for flag, on in (("--quick", args.quick), ("--check", args.check),
                                  ("--json", args.json)) if on]
    if args.nodes is not None:
        argv += ["--nodes", str(args.nodes)]
    if args.messages is not None:
        argv += ["--messages", str(args.messages)]
    for rate in args.rate or ():
        argv += ["--rate", str(rate)]
    return int(bench.main(argv))
