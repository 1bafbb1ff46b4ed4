"""The demo's timeline as a PNG: what each satellite saw and did, in orbital time.

One row per satellite: its eclipses as grey bands, its ground passes as bars coloured by
station, and its mission events as markers (waiting for energy, task run, certificate
formed, submission, inclusion seen on chain). One row per inter-satellite link with its
windows. Vertical lines mark when the ground posted each task and when the contract
certified it. Below, each satellite's battery charge. Matplotlib's Agg backend (no display
needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from node.demo.events import NodeEvent
from sim_link.plan import ContactPlan

_STATION_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
_MARKERS = {"energy_wait": ("v", "tab:gray", "task waits for energy"),
            "run": ("^", "tab:olive", "task run"),
            "certificate": ("*", "gold", "certificate formed"),
            "submitted": ("D", "tab:red", "certificate submitted"),
            "seen_certified": ("o", "tab:green", "certified on chain (seen by the node)")}


def plot_demo(plan: ContactPlan, satellites: Sequence[str], stations: Sequence[str],
              events: Sequence[NodeEvent], posted: Sequence[float], landed: Sequence[float],
              energy: Mapping[str, Sequence[tuple[float, float]]], start: float, path: Path,
              title: str) -> Path:
    """Write the timeline (module docstring) to ``path``; times are hours from ``start``.
    ``energy``: each satellite's battery charge samples (plan time, Wh), drawn below."""
    isl = sorted({(c.source, c.target) for c in plan.contacts if c.max_elevation_deg is None})
    rows = [*satellites, *(f"{a}-{b}" for a, b in isl)]
    index = {name: i for i, name in enumerate(rows)}
    colour = {s: _STATION_COLOURS[i % len(_STATION_COLOURS)] for i, s in enumerate(stations)}

    def hours(t: float) -> float:
        return (t - start) / 3600.0

    fig, (ax, battery) = plt.subplots(
        2, 1, sharex=True, figsize=(12, max(3.0, 0.55 * len(rows) + 1.8) + 2.2), dpi=100,
        gridspec_kw={"height_ratios": [max(3.0, 0.55 * len(rows)), 2.0]})
    try:
        for sat in satellites:
            trace = energy.get(sat, ())
            battery.plot([hours(t) for t, _ in trace], [w for _, w in trace], label=sat)
        battery.set_ylabel("battery (Wh)")
        battery.set_xlabel("orbital time (hours from the start of the plan)")
        battery.grid(linestyle=":", linewidth=0.5)
        if energy:
            battery.legend(loc="lower right", fontsize=8)
        for sat in satellites:
            row = index[sat]
            if plan.eclipses is not None:
                ax.broken_barh([(hours(e.start), e.duration / 3600.0)
                                for e in plan.eclipses.of(sat)],
                               (row - 0.45, 0.9), facecolors="0.85")
        for c in plan.contacts:
            if c.max_elevation_deg is not None:
                sat, station = (c.source, c.target) if c.source in index else (c.target,
                                                                                c.source)
                ax.broken_barh([(hours(c.start), c.duration / 3600.0)], (index[sat] - 0.3, 0.6),
                               facecolors=colour.get(station, "tab:gray"))
            else:
                ax.broken_barh([(hours(c.start), c.duration / 3600.0)],
                               (index[c.link] - 0.2, 0.4), facecolors="tab:gray")
        for event in events:
            if event.kind == "routed":  # the certificate's way down: holder -> submitter
                submitter, _, seconds = event.detail
                if submitter in index:
                    ax.annotate("", xy=(hours(event.t + float(seconds)), index[submitter]),
                                xytext=(hours(event.t), index[event.satellite]),
                                arrowprops={"arrowstyle": "->", "color": "tab:red",
                                            "linewidth": 0.8})
                continue
            marker, face, _ = _MARKERS[event.kind]
            ax.plot(hours(event.t), index[event.satellite], marker=marker, color=face,
                    markeredgecolor="black", markersize=9, linestyle="none", zorder=5)
        for t in posted:
            ax.axvline(hours(t), color="tab:blue", linestyle="--", linewidth=0.8)
        for t in landed:
            ax.axvline(hours(t), color="tab:green", linestyle="-", linewidth=0.8)
        ax.set_yticks(range(len(rows)), rows)
        ax.invert_yaxis()
        ax.set_title(title)
        ax.grid(axis="x", linestyle=":", linewidth=0.5)
        handles = [Patch(facecolor="0.85", label="eclipse (in shadow)"),
                   *(Patch(facecolor=c, label=f"pass over {s}") for s, c in colour.items()),
                   Patch(facecolor="tab:gray", label="inter-satellite link"),
                   *(Line2D([], [], marker=m, color=f, markeredgecolor="black",
                            linestyle="none", label=label) for m, f, label in _MARKERS.values()),
                   Line2D([], [], color="tab:red", linewidth=0.8,
                          label="certificate routed to its submitter's pass"),
                   Line2D([], [], color="tab:blue", linestyle="--", label="task posted"),
                   Line2D([], [], color="tab:green", label="certified on chain")]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=5,
                  fontsize=7, frameon=False)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
