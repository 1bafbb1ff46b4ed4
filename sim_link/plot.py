"""A contact-plan timeline as a PNG: one row per link, a bar per contact.

Uses matplotlib's Agg backend (no display needed). Ground contacts are coloured by link
class; inter-satellite windows are grey. When the plan has eclipses, the first rows are
one per satellite (``SAT shadow``) with its shadow intervals as dark bands (the Sun's
centre hidden) inside lighter ones (the penumbra), and each ground link's row is shaded
while its satellite is in shadow. Then ground links (by station, then satellite), then
ISLs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from sim_link.plan import ContactPlan

_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def plot_timeline(plan: ContactPlan, path: str | Path, title: str = "Contact plan",
                  max_rows: int = 200) -> Path:
    """Write the timeline of ``plan`` to ``path`` (PNG) and return the path. At most
    ``max_rows`` links are drawn (the rest are counted in the title)."""
    path = Path(path)
    contacts = plan.contacts
    ground = sorted({(c.target, c.source) for c in contacts if c.max_elevation_deg is not None})
    isl = sorted({(c.source, c.target) for c in contacts if c.max_elevation_deg is None})
    table = plan.eclipses
    shadow_rows = [f"{sat} shadow" for sat in (table.satellites if table is not None else ())]
    rows = shadow_rows + [f"{s}-{t}" for t, s in ground] + [f"{a}-{b}" for a, b in isl]
    dropped = max(0, len(rows) - max_rows)
    rows = rows[:max_rows]
    index = {name: i for i, name in enumerate(rows)}
    classes = sorted({c.link_class for c in contacts if c.max_elevation_deg is not None})
    colour = {cls: _COLOURS[i % len(_COLOURS)] for i, cls in enumerate(classes)}
    t0 = min([c.start for c in contacts] + ([table.start] if table is not None else []),
             default=0.0)
    height = max(2.5, 0.18 * len(rows) + 1.5)
    fig, ax = plt.subplots(figsize=(12, height), dpi=100)
    try:
        for sat in table.satellites if table is not None else ():
            own = table.of(sat)
            shadow = [((e.start - t0) / 3600.0, e.duration / 3600.0) for e in own]
            penumbra = [((e.penumbra_start - t0) / 3600.0,
                         (e.penumbra_end - e.penumbra_start) / 3600.0) for e in own]
            row = index.get(f"{sat} shadow")
            if row is not None:
                ax.broken_barh(penumbra, (row - 0.4, 0.8), facecolors="0.7")
                ax.broken_barh(shadow, (row - 0.4, 0.8), facecolors="0.15")
            for station, link_sat in ground:
                link_row = index.get(f"{link_sat}-{station}")
                if link_sat == sat and link_row is not None:
                    ax.broken_barh(shadow, (link_row - 0.5, 1.0), facecolors="0.92")
        for c in contacts:
            row = index.get(c.link)
            if row is None:
                continue
            ground_contact = c.max_elevation_deg is not None
            ax.broken_barh([((c.start - t0) / 3600.0, c.duration / 3600.0)], (row - 0.4, 0.8),
                           facecolors=colour.get(c.link_class, "tab:gray")
                           if ground_contact else "tab:gray")
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(rows, fontsize=6 if len(rows) > 40 else 8)
        ax.set_ylim(-1, max(len(rows), 1))
        ax.invert_yaxis()
        start = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        ax.set_xlabel(f"hours after {start}")
        ax.grid(axis="x", linestyle=":", linewidth=0.5)
        more = f" ({dropped} more links not shown)" if dropped else ""
        shadows = f", {len(table.eclipses)} eclipses" if table is not None else ""
        ax.set_title(f"{title}: {len(contacts)} contacts{shadows}{more}")
        handles = [Patch(color=colour[c], label=c) for c in classes]
        if isl:
            handles.append(Patch(color="tab:gray", label="ISL"))
        if table is not None:
            handles += [Patch(color="0.15", label="shadow"), Patch(color="0.7", label="penumbra")]
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
