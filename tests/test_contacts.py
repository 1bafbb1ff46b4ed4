"""sim_link.contacts (plans from orbits, config readers, summary), sim_link.plot and the
plan file's JSON Schema."""

from __future__ import annotations

import itertools
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim_link.contacts import (
    ConfigError,
    build_plan,
    format_summary,
    load_links,
    load_stations,
    node_name,
    parse_links,
    parse_stations,
    summary,
)
from sim_link.examples import EXAMPLE_EPOCH
from sim_link.frames import Station
from sim_link.passes import find_passes
from sim_link.plan import (
    SPEED_OF_LIGHT_KM_S,
    ContactPlan,
    delay_samples_from_ranges,
    plan_from_json,
)
from sim_link.plot import plot_timeline
from sim_link.tle import TleError, load_tles

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SCHEMA = ROOT / "sim_link" / "plan.schema.json"


@pytest.fixture(scope="module")
def tles():
    return (load_tles(str(CONFIGS / "tle" / "iss_like.tle"))
            + load_tles(str(CONFIGS / "tle" / "sso550.tle"))
            + load_tles(str(CONFIGS / "tle" / "walker_12.tle"))[:4])


@pytest.fixture(scope="module")
def stations():
    return load_stations(str(CONFIGS / "stations.toml"))


@pytest.fixture(scope="module")
def links():
    return load_links(str(CONFIGS / "links.toml"))


@pytest.fixture(scope="module")
def plan(tles, stations, links) -> ContactPlan:
    return build_plan(tles, stations, links, EXAMPLE_EPOCH, 12.0,
                      generated="2026-11-23T00:00:00Z")


# -- configuration ----------------------------------------------------------------------


def test_configs_load(stations, links) -> None:
    assert len(stations) == 10
    lats = sorted(s.lat_deg for s in stations)
    assert lats[0] < -70 and lats[-1] > 70  # polar stations at both ends
    assert {c.name for c in links.classes.values()} == {"UHF", "S-band", "X-band", "optical"}
    assert links.classes["UHF"].forward_bps == 9600
    assert links.classes["S-band"].forward_bps == 2e6
    assert links.classes["S-band"].reverse_bps == 64e3
    assert links.for_station("SVALBARD").name == "X-band"
    assert links.for_station("WALLOPS").name == "S-band"
    assert links.isl is not None and links.isl.max_range_km == 5000


STATION_OK = 'name = "A"\nlat = 1.0\nlon = 2.0\nalt_m = 3\nmin_elevation_deg = 10\n'


@pytest.mark.parametrize(("text", "needle"), [
    ("[[station]\n", "not valid TOML"),
    ("x = 1\n", "unknown key(s) x"),
    ("[[station]]\nname = \"A\"\nlat = 1.0\n", "missing key(s) lon"),
    (f"[[station]]\n{STATION_OK}colour = 1\n", "station[0]: unknown key(s) colour"),
    ("[[station]]\nname = \"A\"\nlat = \"north\"\nlon = 0\n", "station[0].lat: expected a "
                                                              "number"),
    ("[[station]]\nname = \"A\"\nlat = 91\nlon = 0\n", "station[0].lat: 91 is outside"),
    ("[[station]]\nname = \"A-B\"\nlat = 1\nlon = 0\n", "may hold only letters"),
    (f"[[station]]\n{STATION_OK}[[station]]\n{STATION_OK}", "duplicate station name(s) A"),
])
def test_bad_stations(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_stations(text, "st.toml")
    assert needle in str(err.value)
    assert str(err.value).startswith("st.toml")


LINKS_OK = """
[classes.S]
kind = "ground"
down_bps = 2e6
up_bps = 64e3
[classes.opt]
kind = "isl"
rate_bps = 1e9
max_range_km = 5000
[assign]
default_station_class = "S"
isl_class = "opt"
"""


@pytest.mark.parametrize(("old", "new", "needle"), [
    ('kind = "ground"', 'kind = "radio"', 'classes.S.kind: want "ground" or "isl"'),
    ("down_bps = 2e6", "down_bps = 0", "classes.S.down_bps: must be positive"),
    ("down_bps = 2e6", "down_bps = true", "classes.S.down_bps: expected a number"),
    ("max_range_km = 5000", "", "classes.opt: missing key(s) max_range_km"),
    ("up_bps = 64e3", "up_bps = 64e3\nloss = 1.5", "classes.S.loss: 1.5 is outside"),
    ('default_station_class = "S"', 'default_station_class = "K"',
     "default_station_class: unknown link class 'K'"),
    ('default_station_class = "S"', 'default_station_class = "opt"',
     "class 'opt' is not a ground class"),
    ('isl_class = "opt"', 'isl_class = "S"', "isl_class: 'S' is not an isl class"),
    ('isl_class = "opt"', 'isl_class = "opt"\n[assign.stations]\nX = "Q"',
     "stations.X: unknown link class 'Q'"),
])
def test_bad_links(old: str, new: str, needle: str) -> None:
    parse_links(LINKS_OK)
    with pytest.raises(ConfigError) as err:
        parse_links(LINKS_OK.replace(old, new), "l.toml")
    assert needle in str(err.value)


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_stations(str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_links(str(tmp_path / "missing.toml"))
    with pytest.raises(TleError, match="cannot read"):
        load_tles(str(tmp_path / "missing.tle"))


def test_node_names() -> None:
    assert node_name("ISS (ZARYA)") == "ISS__ZARYA_"
    assert node_name("SAT.1_a") == "SAT.1_a"
    with pytest.raises(ConfigError):
        node_name("  ")


# -- plans ----------------------------------------------------------------------------------


def test_plan_contacts_follow_passes_and_classes(plan, tles, stations, links) -> None:
    ground = [c for c in plan.contacts if c.max_elevation_deg is not None]
    passes = find_passes(tles, stations, EXAMPLE_EPOCH, EXAMPLE_EPOCH + 12 * 3600.0)
    assert len(ground) == len(passes) > 20
    by_key = {(p.satellite, p.station, p.aos): p for p in passes}
    for c in ground:
        p = by_key[(c.source, c.target, c.start)]
        assert c.end == p.los
        assert p.aos <= p.max_elevation_time <= p.los
        cls = links.for_station(c.target)
        assert (c.link_class, c.rate_forward_bps, c.rate_reverse_bps, c.loss) == (
            cls.name, cls.forward_bps, cls.reverse_bps, cls.loss)
        times = [t for t, _ in c.delay_samples]
        assert times[0] == c.start and times[-1] == c.end
        assert max(b - a for a, b in itertools.pairwise(times)) <= 20.0 + 1e-6
        # Slant range between the altitude and the horizon distance of a LEO pass.
        assert all(350 / SPEED_OF_LIGHT_KM_S < d < 3500 / SPEED_OF_LIGHT_KM_S
                   for _, d in c.delay_samples)
        # Nearest at culmination.
        d_peak = c.delay_at(p.max_elevation_time)
        assert d_peak <= min(d for _, d in c.delay_samples) + 1e-4


def test_delay_samples_from_arrays_equal_those_from_lists() -> None:
    t = np.array([0.0, 20.0, 31.5])
    r = np.array([2345.678, 812.25, 1999.0])
    assert delay_samples_from_ranges(t, r) == delay_samples_from_ranges(list(t), list(r))
    assert delay_samples_from_ranges(t, r)[1] == (20.0, 812.25 / 299_792.458)


def test_plan_isl_contacts(plan, links) -> None:
    isl = [c for c in plan.contacts if c.max_elevation_deg is None]
    assert isl
    opt = links.isl
    for c in isl:
        assert c.link_class == "optical"
        assert c.rate_forward_bps == c.rate_reverse_bps == opt.forward_bps
        assert all(d <= opt.max_range_km / SPEED_OF_LIGHT_KM_S + 1e-9
                   for _, d in c.delay_samples)


def test_plan_names_must_be_unique(tles, stations, links) -> None:
    twin = Station("SVALBARD", 0.0, 0.0)
    with pytest.raises(ValueError, match="must be unique"):
        build_plan(tles[:1], [*stations[:1], twin], links, EXAMPLE_EPOCH, 1.0)


def test_plan_without_isl(tles, stations, links) -> None:
    plan = build_plan(tles[:2], stations[:3], links, EXAMPLE_EPOCH, 6.0, isl=False)
    assert plan.contacts
    assert all(c.max_elevation_deg is not None for c in plan.contacts)


def test_plan_file_round_trips_and_next_contact(plan) -> None:
    again = plan_from_json(plan.to_json())
    assert again == plan
    c = plan.next_contact("SVALBARD", EXAMPLE_EPOCH + 3600.0)
    assert c is not None and c.end > EXAMPLE_EPOCH + 3600.0
    assert "SVALBARD" in (c.source, c.target)
    assert plan.to_ion().startswith("# orbital contact plan")


def test_summary(plan) -> None:
    s = summary(plan, EXAMPLE_EPOCH, EXAMPLE_EPOCH + 12 * 3600.0)
    assert s["days"] == 0.5
    ground = [c for c in plan.contacts if c.max_elevation_deg is not None]
    for name, row in s["stations"].items():
        mine = [c.duration for c in ground if c.target == name]
        assert row["passes"] == len(mine)
        assert row["passes_per_day"] == len(mine) * 2
        assert row["max_duration_s"] == max(mine)
        assert row["total_contact_s"] == pytest.approx(sum(mine))
        assert row["mean_duration_s"] == pytest.approx(sum(mine) / len(mine))
    assert s["ground_contacts"] == len(ground)
    text = format_summary(s)
    assert "SVALBARD" in text and "per day" in text
    assert summary(ContactPlan(()))["contacts"] == 0


# -- plot ----------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    assert data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", data[16:24])


def test_plot_timeline_writes_a_png(plan, tmp_path: Path) -> None:
    out = plot_timeline(plan, tmp_path / "timeline.png")
    w, h = _png_size(out)
    assert w == 1200 and h > 250
    empty = plot_timeline(ContactPlan(()), tmp_path / "empty.png")
    assert _png_size(empty)[0] == 1200


def test_plot_timeline_shows_each_satellites_shadow(plan, tmp_path: Path) -> None:
    """A row of shadow bands per satellite (dark grey, 0.15), above the links."""
    import matplotlib.image

    assert plan.eclipses is not None and len(plan.eclipses.satellites) == 6
    with_shadow = plot_timeline(plan, tmp_path / "shadow.png")
    without = plot_timeline(ContactPlan(plan.contacts, plan.generated),
                            tmp_path / "plain.png")
    # 0.18 inch (18 px) per row: one row per satellite more.
    assert _png_size(with_shadow)[1] - _png_size(without)[1] == pytest.approx(6 * 18, abs=1)

    def dark_band_pixels(path: Path) -> int:
        rgb = matplotlib.image.imread(path)[..., :3]
        return int((np.abs(rgb - 38 / 255).max(axis=-1) < 1e-3).sum())

    assert dark_band_pixels(without) < 500
    assert dark_band_pixels(with_shadow) > 20_000


# -- JSON Schema ------------------------------------------------------------------------
# jsonschema is not a dependency; this checks the keywords plan.schema.json uses.


def _validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$"
              ) -> None:
    if "$ref" in schema:
        ref = schema["$ref"].removeprefix("#/$defs/")
        _validate(value, root["$defs"][ref], root, where)
    types = {"object": dict, "array": list, "string": str, "number": (int, float),
             "null": type(None)}
    if "type" in schema:
        want = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(value, types[t]) for t in want) and not isinstance(value, bool)
        assert ok, f"{where}: want {schema['type']}"
    if "const" in schema:
        assert value == schema["const"], f"{where}: want {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: want one of {schema['enum']!r}"
    if "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{where}: pattern"
    if "minimum" in schema:
        assert value >= schema["minimum"], f"{where}: minimum"
    if "maximum" in schema:
        assert value <= schema["maximum"], f"{where}: maximum"
    if "exclusiveMinimum" in schema:
        assert value > schema["exclusiveMinimum"], f"{where}: exclusiveMinimum"
    if "exclusiveMaximum" in schema:
        assert value < schema["exclusiveMaximum"], f"{where}: exclusiveMaximum"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            assert key in value, f"{where}: missing {key}"
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(props), f"{where}: unknown {set(value) - set(props)}"
        for key, sub in props.items():
            if key in value:
                _validate(value[key], sub, root, f"{where}.{key}")
        extra = schema.get("additionalProperties")
        for key in set(value) - set(props):
            if "propertyNames" in schema:
                _validate(key, schema["propertyNames"], root, f"{where} key {key!r}")
            if isinstance(extra, dict):
                _validate(value[key], extra, root, f"{where}.{key}")
    if isinstance(value, list):
        assert len(value) >= schema.get("minItems", 0), f"{where}: minItems"
        assert len(value) <= schema.get("maxItems", len(value)), f"{where}: maxItems"
        prefix = schema.get("prefixItems", [])
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else schema.get("items")
            if isinstance(sub, dict):
                _validate(item, sub, root, f"{where}[{i}]")


def test_plan_file_matches_schema(plan) -> None:
    schema = json.loads(SCHEMA.read_text())
    doc = json.loads(plan.to_json())
    _validate(doc, schema, schema)
    bad_docs = [
        {**doc, "format": "other"},
        {**doc, "extra": 1},
        {**doc, "contacts": [{**doc["contacts"][0], "source": "A-B"}]},
        {**doc, "contacts": [{**doc["contacts"][0], "loss": 1.0}]},
        {**doc, "contacts": [{**doc["contacts"][0], "delay_s": []}]},
        {**doc, "contacts": [{**doc["contacts"][0], "rate_bps": {"forward": 1}}]},
        {**doc, "version": 3},
        {**doc, "eclipses": {**doc["eclipses"], "model": "cylindrical"}},
        {**doc, "eclipses": {**doc["eclipses"], "satellites": {"A-B": []}}},
        {**doc, "eclipses": {**doc["eclipses"], "satellites": {"SAT": [{"start": 1.0}]}}},
        {**doc, "eclipses": {**doc["eclipses"], "satellites": {"SAT": [
            {"start": 1.0, "end": 2.0, "penumbra": [0.5, 2.5], "umbra": "none"}]}}},
    ]
    for bad in bad_docs:
        with pytest.raises(AssertionError):
            _validate(bad, schema, schema)


def test_station_objects_are_usable_directly() -> None:
    st = Station("X", 0.0, 0.0)
    assert st.min_elevation_deg == 10.0


def test_link_plan_benchmark_quick_run() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "benchmarks.link_plan", "--quick", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [r["capability"].split(",")[0] for r in rows] == [
        "passes", "ground plan (passes+delays)", "ISL windows"]
    assert all(r["ours"] > 0 for r in rows)
