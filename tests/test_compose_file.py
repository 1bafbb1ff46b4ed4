"""compose.yaml (issue #19) without a Docker daemon: the committed file is the one
``orbital demo --write-compose`` writes for the default options, YAML reads it back as the
document, and the document keeps each satellite on a network of its own with the ground
only, so that it reaches the chain and its neighbours through the emulators alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from node.demo.compose import compose_document, compose_text, to_yaml
from node.demo.placement import COMPOSE, LINK_PORT_BASE, LOCAL
from node.demo.run import DemoOptions

REPO = Path(__file__).resolve().parents[1]


def test_the_committed_compose_file_is_what_the_demo_writes() -> None:
    assert (REPO / "compose.yaml").read_text() == compose_text(DemoOptions())
    assert yaml.safe_load((REPO / "compose.yaml").read_text()) == \
        compose_document(DemoOptions())


def test_write_compose_writes_the_options_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    subprocess.run([sys.executable, "-m", "node.cli.main", "demo", "--write-compose",
                    str(path), "--satellites", "5", "--fault", "partition"], cwd=REPO,
                   check=True, capture_output=True)
    document = yaml.safe_load(path.read_text())
    assert sorted(document["services"]) == ["anvil", "ground", "sat1", "sat2", "sat3", "sat4",
                                            "sat5"]
    command = document["services"]["ground"]["command"]
    assert command[command.index("--satellites") + 1] == "5"
    assert command[command.index("--fault") + 1] == "partition"
    assert "--start" not in command  # the ground flies from now


def test_start_pins_the_flight_and_is_passed_to_the_ground(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    subprocess.run([sys.executable, "-m", "node.cli.main", "demo", "--write-compose",
                    str(path), "--start", "2026-12-07T02:00:00+00:00"], cwd=REPO,
                   check=True, capture_output=True)
    command = yaml.safe_load(path.read_text())["services"]["ground"]["command"]
    assert command[command.index("--start") + 1] == "2026-12-07T02:00:00Z"


@pytest.mark.parametrize(("start", "says"), [
    ("yesterday", "'yesterday' is not an ISO 8601 time (e.g. 2026-12-07T02:00:00Z)"),
    ("2026-12-07T02:00:00", "'2026-12-07T02:00:00' has no time zone: add Z for UTC"),
    ("2026-13-01T00:00:00Z", "'2026-13-01T00:00:00Z' is not an ISO 8601 time (e.g. "
     "2026-12-07T02:00:00Z)")])
def test_a_bad_start_is_refused_in_one_line(start: str, says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "node.cli.main", "demo", "--write-compose",
                           "/dev/null", "--start", start], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == \
        f"orbital demo: error: argument --start: {says}"


@pytest.mark.parametrize("argument", [["--fault", "kill"], ["--wallets", "softhsm"]])
def test_what_cannot_fly_in_containers_is_refused_in_one_line(argument: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "node.cli.main", "demo", "--write-compose",
                           "/dev/null", *argument], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("orbital demo: ")


def test_each_satellite_reaches_only_the_ground_on_an_internal_network() -> None:
    document = compose_document(DemoOptions(satellites=4))
    services, networks = document["services"], document["networks"]
    assert all(network["internal"] for network in networks.values())  # no way out
    members: dict[str, set[str]] = {}
    for name, service in services.items():
        for network in service["networks"]:
            members.setdefault(network, set()).add(name)
    assert members["chain"] == {"anvil", "ground"}
    for k in range(1, 5):
        assert members[f"sat{k}"] == {"ground", f"sat{k}"}
        assert services[f"sat{k}"]["volumes"] == [f"sat{k}:/data"]
        assert f"sat{k}:/sats/SAT{k}" in services["ground"]["volumes"]
    for service in services.values():  # a stack resolves names to containers
        assert service["deploy"]["endpoint_mode"] == "dnsrr"
        for value in service.get("entrypoint", []):
            assert "$" not in value.replace("$$", "")  # compose would interpolate it


def test_the_placements_address_the_same_links_differently() -> None:
    assert LOCAL.emulator_listen(3) == ("127.0.0.1", 0)
    assert COMPOSE.emulator_listen(3) == ("0.0.0.0", LINK_PORT_BASE + 3)
    with pytest.raises(ValueError, match="at most"):
        COMPOSE.emulator_listen(5000)
    assert COMPOSE.peer_multiaddr(9001, "12D3KooX").startswith("/dns4/ground/tcp/9001/p2p/")
    assert LOCAL.peer_multiaddr(9001, "12D3KooX").startswith("/ip4/127.0.0.1/tcp/9001/p2p/")
    assert COMPOSE.node_url("SAT2") == "http://sat2:8545"
    assert (LOCAL.node_rpc, COMPOSE.node_rpc) == ("127.0.0.1:0", "0.0.0.0:8545")


def test_to_yaml_quotes_every_string_so_none_reads_as_another_type() -> None:
    document = {"a": ["yes", "1", "null", "0x10", "a: b", "#c"], "b": {"c": True, "d": 1.5},
                "e": {}, "f": [{"g": "h", "i": ["j"]}]}
    assert yaml.safe_load(to_yaml(document)) == document
