"""Helpers shared by the benchmarks: one-core pinning, best-of-N timing, the result table.

A benchmark measures each capability several times with :func:`timed` and reports
a :class:`Row`: our figure, the named baseline's figure from the same run, the
speed-up of ours over the baseline, and the target if the issue sets one.
:func:`render` prints the rows as a plain-text table; :func:`as_json` dumps them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def pin_to_one_core() -> int | None:
    """Pin this process to one CPU (the lowest it may run on) and return it, or
    ``None`` where the OS has no affinity call. Python runs on one core anyway; pinning
    keeps the scheduler from moving it between cores in the middle of a measurement."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


@dataclass(frozen=True)
class Samples:
    """Wall-clock durations (seconds, ``time.perf_counter``) of repeated runs."""

    seconds: tuple[float, ...]

    @property
    def best(self) -> float:
        """The fastest run: the least disturbed by the rest of the machine."""
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(run: Callable[..., object], repeats: int,
          setup: Callable[[], object] | None = None) -> Samples:
    """Time ``run()`` -- or ``run(setup())``, with ``setup`` untimed -- ``repeats`` times.

    A full garbage collection precedes each run so that one run's garbage is not
    collected on the next one's clock; the collector stays enabled during the run,
    as it is in production."""
    seconds = []
    for _ in range(repeats):
        args = () if setup is None else (setup(),)
        gc.collect()
        start = time.perf_counter()
        run(*args)
        seconds.append(time.perf_counter() - start)
    return Samples(tuple(seconds))


def interleaved(runs: Sequence[Callable[[], object]], repeats: int) -> list[Samples]:
    """Time each of ``runs`` ``repeats`` times, taking turns (a, b, a, b, ...), so that
    a burst of load on the machine hits all of them rather than one."""
    seconds: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, out in zip(runs, seconds, strict=True):
            out.extend(timed(run, 1).seconds)
    return [Samples(tuple(s)) for s in seconds]


@dataclass(frozen=True)
class Target:
    """What the issue asks for: ``ours`` at least ``minimum`` (in the row's unit), or
    the ``ratio`` (speed-up over the baseline) at least ``minimum``."""

    on: str  # "ours" or "ratio"
    minimum: float

    def text(self, unit: str) -> str:
        if self.on == "ratio":
            return f">= {self.minimum:g}x"
        lower_is_better = unit.startswith(("ms/", "s/", "us/"))  # as Row.higher_is_better
        return f"{'<=' if lower_is_better else '>='} {_number(self.minimum)} {unit}"


@dataclass(frozen=True)
class Row:
    """One capability: our figure, the baseline's (same unit), and the target."""

    capability: str
    unit: str  # for example "headers/s" (higher is better) or "ms/block" (lower is better)
    ours: float
    baseline: float | None = None
    target: Target | None = None
    ours_median: float | None = None  # the same figure from the median run (JSON only)
    baseline_median: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return not self.unit.startswith(("ms/", "s/", "us/"))

    @property
    def ratio(self) -> float | None:
        """Speed-up of ours over the baseline: > 1 means ours is faster."""
        if self.baseline is None:
            return None
        return self.ours / self.baseline if self.higher_is_better else self.baseline / self.ours

    @property
    def passed(self) -> bool | None:
        """Whether the target is met (``None`` when there is no target)."""
        if self.target is None:
            return None
        value = self.ratio if self.target.on == "ratio" else self.ours
        assert value is not None, f"{self.capability}: a ratio target needs a baseline"
        if self.target.on == "ours" and not self.higher_is_better:
            return value <= self.target.minimum
        return value >= self.target.minimum


def rate(count: int, seconds: float) -> float:
    """Items per second."""
    return count / seconds


def ms_per(count: int, seconds: float) -> float:
    """Milliseconds per item."""
    return 1000 * seconds / count


def measured(capability: str, unit: str, count: int, ours: Samples,
             baseline: Samples | None = None, target: Target | None = None) -> Row:
    """A row from timings of ``count`` items each: a rate for a unit ending in ``/s``,
    else milliseconds per item. The table shows the best run; JSON adds the median."""
    per = rate if unit.endswith("/s") else ms_per
    return Row(
        capability, unit, per(count, ours.best),
        None if baseline is None else per(count, baseline.best), target,
        per(count, ours.median), None if baseline is None else per(count, baseline.median),
    )


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(rows: Sequence[Row], notes: Sequence[str] = ()) -> str:
    """The rows as a plain-text table, then numbered notes."""
    header = ("capability", "ours", "baseline", "ratio", "target", "pass/FAIL")
    body = []
    for row in rows:
        verdict = {None: "-", True: "pass", False: "FAIL"}[row.passed]
        body.append((
            row.capability,
            f"{_number(row.ours)} {row.unit}",
            "-" if row.baseline is None else f"{_number(row.baseline)} {row.unit}",
            "-" if row.ratio is None else f"{row.ratio:.2f}x",
            "-" if row.target is None else row.target.text(row.unit),
            verdict,
        ))
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    numeric = {1, 2, 3}

    def line(cells: Sequence[str]) -> str:
        return " | ".join(c.rjust(w) if i in numeric else c.ljust(w)
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(header), "-+-".join("-" * w for w in widths)]
    out += [line(cells) for cells in body]
    out += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(out)


def environment(cpu: int | None) -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "pinned_cpu": cpu,
    }


def as_json(rows: Sequence[Row], **meta: Any) -> dict[str, Any]:
    """The rows (with ratio and verdict) and ``meta`` as a JSON-ready dict."""
    return {
        **meta,
        "rows": [{**asdict(row), "ratio": row.ratio, "passed": row.passed} for row in rows],
    }


def benchmark_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The command line every benchmark shares: ``--quick`` (small sizes, for smoke
    tests), ``--check`` (exit 1 when a target is missed) and ``--json``; a benchmark adds
    its own options to the parser it gets."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}",
                                     description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    return parser


def print_rows(args: argparse.Namespace, rows: Sequence[Row], notes: Sequence[str],
               sizes: Any, cpu: int | None) -> None:
    """The result of a :func:`benchmark_parser` run: JSON with ``--json`` (the rows, the
    dataclass ``sizes``, the notes and :func:`environment`), else the table with the notes,
    the pinned CPU and whether the run was quick."""
    if args.json:
        print(json.dumps(as_json(rows, sizes=asdict(sizes), statistic="best", notes=notes,
                                 **environment(cpu)), indent=2))
    else:
        mode = "quick" if args.quick else "full"
        print(render(rows, (*notes, f"pinned to CPU {cpu}; {mode} run")))
