"""``orbital link``: contact plans from real orbits, and the link emulator.

``plan`` propagates TLEs (SGP4), finds ground-station passes and inter-satellite
visibility windows, and writes a contact plan (JSON; optionally NASA ION lines and a
timeline PNG) with each satellite's eclipses. ``next`` says when a node is next online
and when a satellite next enters or leaves the Earth's shadow. ``run`` emulates one link of a
plan as a TCP proxy: connections only inside windows, bytes delayed by the current
one-way light time and limited to the window's rate, cut at LOS.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from node.cli.argtypes import positive
from node.cli.lazy import lazy

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``link`` and its subcommands."""
    parser = commands.add_parser("link", help="contact plans from orbits; link emulator",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("plan", help="compute a contact plan from TLEs and stations")
    p.add_argument("--tle", required=True, help="TLE file (2- or 3-line sets)")
    p.add_argument("--stations", default=str(CONFIGS / "stations.toml"))
    p.add_argument("--links", default=str(CONFIGS / "links.toml"), help="link classes")
    p.add_argument("--hours", type=positive, default=24.0)
    p.add_argument("--start", help="UTC start, ISO 8601 (default: now)")
    p.add_argument("--no-isl", action="store_true", help="ground passes only")
    p.add_argument("--out", required=True, metavar="plan.json")
    p.add_argument("--ion", metavar="plan.ion", help="also write NASA ION contact lines")
    p.add_argument("--plot", metavar="passes.png", help="also draw a timeline PNG")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=lazy("node.cli.link_run", "_plan"))

    p = verbs.add_parser("next", help="when is a node next online, and in or out of shadow")
    p.add_argument("--plan", required=True)
    p.add_argument("--sat", required=True, help="node name (satellite or station)")
    p.add_argument("--at", help="UTC time, ISO 8601 (default: now)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=lazy("node.cli.link_run", "_next"))

    p = verbs.add_parser("run", help="emulate one link of a plan as a TCP proxy")
    p.add_argument("--plan", required=True)
    p.add_argument("--link", required=True, metavar="SAT-GS")
    p.add_argument("--listen", required=True, metavar="HOST:PORT")
    p.add_argument("--upstream", required=True, metavar="HOST:PORT")
    p.add_argument("--time-scale", type=positive, default=1.0,
                   help="plan seconds per wall second (default 1)")
    p.add_argument("--start", help="plan time to start at, ISO 8601 (default: now)")
    p.add_argument("--epoch", type=positive, metavar="UNIX",
                   help="UNIX time at which the plan is at --start (default: when this "
                        "starts); give nodes behind the link the same [link] epoch so they "
                        "agree on plan time")
    p.add_argument("--on-los", choices=["reset", "stall"], default="reset")
    p.add_argument("--gate", choices=["reset", "silent"], default="reset",
                   help="outside windows: reset a dialler (default), or answer nothing so "
                        "its connect times out, as over a real link (Linux)")
    p.add_argument("--status", metavar="HOST:PORT", help="serve GET /status here")
    p.set_defaults(run=lazy("node.cli.link_run", "_run"))
