"""How the demo's cost grows with the constellation (issue #18): wall time and bytes per
stage at 3, 10 and 30 satellites over 24 orbital hours.

Each size is one whole ``orbital demo`` run (:func:`node.demo.run.run_demo`, the same code as
the command): anvil, the contracts, one ``orbital node run`` process per satellite behind
its link emulators, ``--tasks`` tasks. For each size the table gives the wall time of each
stage (plan, ground, links, start, fly), the bytes the ground links and the ISLs carried,
the CPU the node processes used, and the tasks landed; the baseline is the smallest size
in the same run, so the last column says how much more each satellite costs in a bigger
constellation (per-satellite CPU relative to the baseline's). Every run shares this
machine's 2 cores: at some size the nodes no longer keep up with the time scale, which the
"landed" column and the fly time show.

Run from the repository root::

    python -m benchmarks.demo                          # 3, 10, 30 satellites, 24 h at x600
    python -m benchmarks.demo --sizes 3 10 --hours 6   # smaller
    python -m benchmarks.demo --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

from node.demo.run import DemoOptions, finish, run_demo


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one(satellites: int, stations: int, hours: float, time_scale: float, tasks: int,
        out: Path) -> dict[str, Any]:
    """One demo run at ``satellites``; its figures."""
    before = _cpu_children()
    flight = asyncio.run(run_demo(DemoOptions(
        satellites=satellites, stations=stations, hours=hours, time_scale=time_scale,
        tasks=tasks, out=out), lambda flight: None))
    cpu = _cpu_children() - before
    report, _, _ = finish(flight, out)
    ground = isl = 0
    for name, link in report["links"].items():
        moved = link["bytes"]["up"] + link["bytes"]["down"]
        peer = name.split("-", 1)[1]
        if peer in report["satellites"]:
            isl += moved
        else:
            ground += moved
    return {"satellites": satellites, "links": len(report["links"]),
            "stages": report["stages"], "groundBytes": ground, "islBytes": isl,
            "nodeCpuS": round(cpu, 1), "posted": report["posted"], "landed": report["landed"]}


def render(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    lines = ["satellites | links | plan s | ground s | start s | fly s | ground MB | ISL MB "
             "| node CPU s | landed | CPU per satellite vs baseline",
             "-" * 118]
    for row in rows:
        stages = row["stages"]
        per = row["nodeCpuS"] / row["satellites"]
        per_base = base["nodeCpuS"] / base["satellites"]
        lines.append(
            f"{row['satellites']:>10} | {row['links']:>5} | {stages.get('plan', 0):>6.1f} | "
            f"{stages.get('ground', 0):>8.1f} | {stages.get('start', 0):>7.1f} | "
            f"{stages.get('fly', 0):>5.1f} | {row['groundBytes'] / 1e6:>9.2f} | "
            f"{row['islBytes'] / 1e6:>6.2f} | {row['nodeCpuS']:>10.1f} | "
            f"{row['landed']:>3}/{row['posted']:<2} | "
            f"{per / per_base if per_base else 0:.2f}x ({per:.1f} s each; baseline: "
            f"{base['satellites']} satellites)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 10, 30])
    parser.add_argument("--stations", type=int, default=2)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--time-scale", type=float, default=600.0)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            print(f"demo with {size} satellites...", file=sys.stderr, flush=True)
            try:
                rows.append(one(size, args.stations, args.hours, args.time_scale, args.tasks,
                                Path(tmp) / f"sats-{size}"))
            except Exception as exc:  # a size this machine cannot fly is a result too
                failed.append(f"{size} satellites: did not fly: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]}")
    if args.json:
        print(json.dumps({"rows": rows, "failed": failed}, indent=1))
    else:
        print(render(rows) if rows else "no size flew")
        for line in failed:
            print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
