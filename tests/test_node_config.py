"""node/config.py: the ``orbital node run --config`` file -- every refusal names its key in
one line, relative paths follow the file, flags override the file, the shipped configs load."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from node.chain.anchor import AnchorSource
from node.config import ConfigError, load_node_config, node_options, parse_node_config
from node.service import NodeOptions

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "configs" / "genesis-1.toml",
           *sorted((ROOT / "configs" / "constellation").glob("*.toml"))]
HASH = "0x" + "ab" * 32
OPS = ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
       "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"]


def _doc(**sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "node": {"chain_id": 31337, "data_dir": "data"},
        "upstreams": {"urls": ["http://127.0.0.1:8545"]},
        "trust": {"mode": "checkpoint", "checkpoint": f"17:{HASH}"}}
    for name, value in sections.items():
        if value is None:
            doc.pop(name)
        else:
            doc[name] = value
    return doc


def _refused(doc: dict[str, Any], base: Path = Path("/cfg")) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_node_config(doc, base)
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_node_config(path)
    assert config.chain_id == 31337
    assert config.data_dir.is_absolute()
    options = node_options(config)
    assert isinstance(options, NodeOptions) and options.upstreams
    if path.parent.name == "constellation":
        assert config.link is not None and config.link.plan.is_file()


def test_constellation_has_three_satellites_and_ground() -> None:
    links = [load_node_config(p).link for p in SHIPPED if p.parent.name == "constellation"]
    names = {link.node for link in links if link is not None}
    assert {"SAT1", "SAT2", "SAT3"} <= names and len(names - {"SAT1", "SAT2", "SAT3"}) >= 2


def test_minimal_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "node.toml"
    path.parent.mkdir()
    path.write_text('[node]\nchain_id = 1\ndata_dir = "state"\n'
                    '[upstreams]\nurls = ["a=http://h:1", {url = "https://x.example/k"}]\n'
                    '[trust]\nmode = "quorum"\n[outbox]\npath = "../ob.sqlite"\n')
    config = load_node_config(path)
    assert config.data_dir == (tmp_path / "sub" / "state").resolve()
    assert config.outbox.path == (tmp_path / "ob.sqlite").resolve()
    assert [e.name for e in config.upstreams] == ["a", "x.example"]
    assert (config.rpc_host, config.rpc_port, config.history, config.refresh) == \
        ("127.0.0.1", 8545, 256, 12.0)
    assert config.metrics is None and config.link is None and config.wallet is None
    assert (config.log.format, config.log.level) == ("text", "info")
    assert config.trust.quorum is None


def test_full_config(tmp_path: Path) -> None:
    plan = ROOT / "configs" / "constellation" / "plan.json"
    config = parse_node_config(_doc(
        node={"chain_id": 31337, "data_dir": "/d", "rpc": "0.0.0.0:0", "history": 9,
              "refresh": "2m", "chain": "anvil"},
        trust={"mode": "ground", "operators": OPS, "threshold": 2, "heads_dir": "h",
               "max_head_age": "1d"},
        link={"plan": str(plan), "node": "SAT2"},
        wallet={"backend": "pkcs11", "home": "w"},
        outbox={"max_age": 60}, metrics={"listen": "[::1]:9100"},
        log={"format": "json", "level": "debug"}), tmp_path)
    assert (config.rpc_host, config.rpc_port, config.refresh) == ("0.0.0.0", 0, 120.0)
    assert config.trust.operators == tuple(bytes.fromhex(a[2:]) for a in OPS)
    assert config.trust.heads_dir == tmp_path / "h" and config.trust.max_head_age == 86400
    assert config.wallet is not None and config.wallet.home == tmp_path / "w"
    assert config.outbox.path == Path("/d/outbox.sqlite") and config.outbox.max_age == 60
    assert config.metrics is not None and (config.metrics.host, config.metrics.port) == \
        ("::1", 9100)
    options = node_options(config)
    assert (options.trust, options.threshold, options.heads_dir, options.chain) == \
        ("ground", 2, tmp_path / "h", "anvil")


def test_checkpoint_and_beacon(tmp_path: Path) -> None:
    config = parse_node_config(_doc(), tmp_path)
    assert config.trust.checkpoint is not None
    assert config.trust.checkpoint.number == 17
    assert config.trust.checkpoint.source is AnchorSource.USER
    config = parse_node_config(_doc(trust={"mode": "beacon", "beacon_url": "http://b:5052",
                                           "network": "sepolia"}), tmp_path)
    assert (config.trust.beacon_url, config.trust.network) == ("http://b:5052", "sepolia")


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = parse_node_config(_doc(), tmp_path)
    options = node_options(config, {"rpc_port": 9999, "upstreams": ("b=http://o:2",),
                                    "history": None, "trust": "quorum", "quorum": 1,
                                    "data_dir": "/elsewhere", "refresh": 1.5})
    assert options.rpc_port == 9999 and options.upstreams == ("b=http://o:2",)
    assert options.history == 256  # None: the flag was not given
    assert (options.trust, options.quorum) == ("quorum", 1)
    assert options.data_dir == Path("/elsewhere") and options.refresh == 1.5
    assert node_options(config, {"upstreams": ()}).upstreams == ("127.0.0.1:8545="
                                                                 "http://127.0.0.1:8545",)
    with pytest.raises(ValueError, match="nonsense"):
        node_options(config, {"nonsense": 1})


# Each entry: the document change, the key named, a fragment of the one-line message.
PLAN1 = {"plan": str(ROOT / "configs/constellation/plan.json"), "node": "SAT1"}
_BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"extra": {}}, "extra", "unknown key"),
    ({"node": None}, "node", "missing"),
    ({"upstreams": None}, "upstreams", "missing"),
    ({"trust": None}, "trust", "missing"),
    ({"node": 3}, "node", "want a table"),
    ({"node": {"chain_id": "x", "data_dir": "d"}}, "node.chain_id",
     'want an integer 0..2^64-1, got "x"'),
    ({"node": {"chain_id": -1, "data_dir": "d"}}, "node.chain_id", "got -1"),
    ({"node": {"chain_id": 2**64, "data_dir": "d"}}, "node.chain_id", "0..2^64-1"),
    ({"node": {"chain_id": True, "data_dir": "d"}}, "node.chain_id", "got true"),
    ({"node": {"data_dir": "d"}}, "node.chain_id", "missing"),
    ({"node": {"chain_id": 1}}, "node.data_dir", "missing"),
    ({"node": {"chain_id": 1, "data_dir": 5}}, "node.data_dir", "want a non-empty string"),
    ({"node": {"chain_id": 1, "data_dir": ""}}, "node.data_dir", "want a non-empty string"),
    ({"node": {"chain_id": 1, "data_dir": "d", "port": 1}}, "node.port", "unknown key"),
    ({"node": {"chain_id": 1, "data_dir": "d", "rpc": "localhost"}}, "node.rpc",
     'want "HOST:PORT"'),
    ({"node": {"chain_id": 1, "data_dir": "d", "rpc": "h:70000"}}, "node.rpc", "0..65535"),
    ({"node": {"chain_id": 1, "data_dir": "d", "rpc": 8545}}, "node.rpc", "got 8545"),
    ({"node": {"chain_id": 1, "data_dir": "d", "history": 0}}, "node.history",
     "want an integer 1.."),
    ({"node": {"chain_id": 1, "data_dir": "d", "history": 1.5}}, "node.history", "got 1.5"),
    ({"node": {"chain_id": 1, "data_dir": "d", "refresh": 0}}, "node.refresh",
     "positive duration"),
    ({"node": {"chain_id": 1, "data_dir": "d", "refresh": "5 min"}}, "node.refresh",
     'got "5 min"'),
    ({"node": {"chain_id": 1, "data_dir": "d", "refresh": "nan"}}, "node.refresh",
     "positive duration"),
    ({"node": {"chain_id": 1, "data_dir": "d", "chain": "mars"}}, "node.chain",
     "nor a genesis/forkenv file"),
    ({"upstreams": {"urls": []}}, "upstreams.urls", "non-empty array"),
    ({"upstreams": {"urls": "http://a:1"}}, "upstreams.urls", "non-empty array"),
    ({"upstreams": {"url": ["http://a:1"]}}, "upstreams.url", "unknown key"),
    ({"upstreams": {"urls": ["ftp://a"]}}, "upstreams.urls[0]", "name=http(s)"),
    ({"upstreams": {"urls": ["http://a:1", "n=gopher://x"]}}, "upstreams.urls[1]",
     "http(s)://host"),
    ({"upstreams": {"urls": [7]}}, "upstreams.urls[0]", "got 7"),
    ({"upstreams": {"urls": [{"name": "a"}]}}, "upstreams.urls[0].url", "missing"),
    ({"upstreams": {"urls": [{"url": "http://a:1", "nick": "a"}]}},
     "upstreams.urls[0].nick", "unknown key"),
    ({"upstreams": {"urls": [{"url": "http://a:1", "name": "a b"}]}}, "upstreams.urls[0]",
     "without spaces"),
    ({"upstreams": {"urls": ["x=http://a:1", "x=http://b:1"]}}, "upstreams.urls[1]",
     "used twice"),
    ({"trust": {}}, "trust.mode", "missing"),
    ({"trust": {"mode": "vibes"}}, "trust.mode",
     'want one of checkpoint, quorum, ground, beacon, got "vibes"'),
    ({"trust": {"mode": "checkpoint", "when": 1}}, "trust.when", "unknown key"),
    ({"trust": {"mode": "checkpoint"}}, "trust.checkpoint", "missing"),
    ({"trust": {"mode": "checkpoint", "checkpoint": "17"}}, "trust.checkpoint",
     "NUMBER:HASH"),
    ({"trust": {"mode": "checkpoint", "checkpoint": f"17:{HASH}", "quorum": 1}},
     "trust.quorum", 'not used by mode "checkpoint"'),
    ({"trust": {"mode": "quorum", "quorum": 2}}, "trust.quorum", "want an integer 1..1"),
    ({"trust": {"mode": "quorum", "quorum": "all"}}, "trust.quorum", 'got "all"'),
    ({"trust": {"mode": "ground", "threshold": 1}}, "trust.operators", "missing"),
    ({"trust": {"mode": "ground", "operators": []}}, "trust.operators", "non-empty array"),
    ({"trust": {"mode": "ground", "operators": ["0x12"], "threshold": 1}},
     "trust.operators[0]", "40 hex digits"),
    ({"trust": {"mode": "ground", "operators": [OPS[0].replace("C", "c", 1)],
                "threshold": 1}}, "trust.operators[0]", "EIP-55"),
    ({"trust": {"mode": "ground", "operators": [OPS[0], OPS[0].lower()], "threshold": 1}},
     "trust.operators[1]", "listed twice"),
    ({"trust": {"mode": "ground", "operators": OPS}}, "trust.threshold", "missing"),
    ({"trust": {"mode": "ground", "operators": OPS, "threshold": 3}}, "trust.threshold",
     "1..2"),
    ({"trust": {"mode": "ground", "operators": OPS, "threshold": 1, "max_head_age": -5}},
     "trust.max_head_age", "got -5"),
    ({"trust": {"mode": "ground", "operators": OPS, "threshold": 1, "beacon_url": "x"}},
     "trust.beacon_url", 'not used by mode "ground"'),
    ({"trust": {"mode": "beacon"}}, "trust.beacon_url", "missing"),
    ({"trust": {"mode": "beacon", "beacon_url": "b:5052"}}, "trust.beacon_url",
     "http(s)://"),
    ({"trust": {"mode": "beacon", "beacon_url": "http://b", "network": "mars"}},
     "trust.network", "nor a config.yaml"),
    ({"link": {"plan": "nope.json", "node": "SAT1"}}, "link.plan", "no such file"),
    ({"link": {"node": "SAT1"}}, "link.plan", "missing"),
    ({"link": {"plan": str(ROOT / "configs/constellation/plan.json")}}, "link.node",
     "missing"),
    ({"link": {"plan": str(ROOT / "configs/constellation/plan.json"), "node": "SAT-1"}},
     "link.node", "letters, digits"),
    ({"link": {"plan": str(ROOT / "configs/constellation/plan.json"), "node": "SAT9"}},
     "link.node", "no contact in plan.json"),
    ({"link": {"plan": str(ROOT / "configs/stations.toml"), "node": "SAT1"}}, "link.plan",
     "not JSON"),
    ({"link": {"plan": "x", "node": "y", "rate": 1}}, "link.rate", "unknown key"),
    ({"link": {**PLAN1, "links": "SAT1-WALLOPS"}}, "link.links",
     "want an array"),
    ({"link": {**PLAN1, "links": ["SAT2-WALLOPS"]}}, "link.links[0]",
     'want "SAT1-PEER"'),
    ({"link": {**PLAN1, "links": ["SAT1-NOWHERE"]}},
     "link.links[0]", "no contact in the plan"),
    ({"link": {**PLAN1, "links": ["SAT1-WALLOPS", "SAT1-WALLOPS"]}},
     "link.links[1]", "listed twice"),
    ({"link": {**PLAN1, "time_scale": 0}}, "link.time_scale",
     "positive number"),
    ({"link": {**PLAN1, "time_scale": 10}}, "link.start",
     "missing: a time_scale or an epoch"),
    ({"link": {**PLAN1, "start": "yesterday"}}, "link.start",
     "ISO 8601"),
    ({"link": {"plan": str(ROOT / "configs/constellation/plan.json"), "node": "SAT1",
                "start": datetime(2026, 1, 1)}}, "link.start", "with its zone"),
    ({"link": {**PLAN1, "start": "2026-01-01T00:00:00Z",
                "epoch": "now"}}, "link.epoch", "positive number"),
    ({"watch": {"accounts": ["0x12"]}}, "watch.accounts[0]", "40 hex digits"),
    ({"watch": {"accounts": []}}, "watch.accounts", "non-empty array"),
    ({"watch": {"calls": {"to": "0x" + "11" * 20}}}, "watch.calls", "want an array"),
    ({"watch": {"calls": [{"data": "0x"}]}}, "watch.calls[0].to", "missing"),
    ({"watch": {"calls": [{"to": "0x" + "11" * 20, "data": "0x1"}]}},
     "watch.calls[0].data", "0x-hex bytes"),
    ({"watch": {"calls": [{"to": "0x" + "11" * 20, "value": 1}]}}, "watch.calls[0].value",
     "unknown key"),
    ({"watch": {"blocks": 1}}, "watch.blocks", "unknown key"),
    ({"wallet": {"backend": "ledger"}}, "wallet.backend",
     'want one of keystore, pkcs11, got "ledger"'),
    ({"wallet": {"home": 1}}, "wallet.home", "non-empty string"),
    ({"wallet": {"key": "0x"}}, "wallet.key", "unknown key"),
    ({"wallet": []}, "wallet", "want a table"),
    ({"outbox": {"max_age": "forever"}}, "outbox.max_age", 'got "forever"'),
    ({"outbox": {"path": []}}, "outbox.path", "got an array"),
    ({"outbox": {"size": 1}}, "outbox.size", "unknown key"),
    ({"metrics": {}}, "metrics.listen", "missing"),
    ({"metrics": {"listen": "9100"}}, "metrics.listen", 'got "9100"'),
    ({"metrics": {"listen": ":9100"}}, "metrics.listen", "HOST:PORT"),
    ({"metrics": {"listen": "h:1", "path": "/m"}}, "metrics.path", "unknown key"),
    ({"log": {"format": "xml"}}, "log.format", 'want one of text, json, got "xml"'),
    ({"log": {"level": "INFO"}}, "log.level", "want one of debug, info"),
    ({"log": {"colour": True}}, "log.colour", "unknown key"),
]

# [wallet], [gossip], [tasks]: the mission's sections (node/mission).
ATT, REG = "0x" + "11" * 20, "0x" + "22" * 20
PEER = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
TASKS = {"attestations": ATT, "registry": REG}
MISSION = {"wallet": {}, "gossip": {}, "tasks": TASKS}
_BAD += [
    ({"gossip": {}}, "tasks", "missing: [gossip] carries attestations"),
    ({"tasks": TASKS, "gossip": {}}, "wallet", "missing: [tasks] signs"),
    ({"tasks": TASKS, "wallet": {}}, "gossip", "missing: [tasks] exchanges"),
    ({**MISSION, "gossip": []}, "gossip", "want a table"),
    ({**MISSION, "gossip": {"listen": "4001"}}, "gossip.listen", 'want "HOST:PORT"'),
    ({**MISSION, "gossip": {"port": 4001}}, "gossip.port", "unknown key"),
    ({**MISSION, "gossip": {"peers": PEER}}, "gossip.peers", "want an array of multiaddrs"),
    ({**MISSION, "gossip": {"peers": ["/ip4/127.0.0.1/tcp/4001"]}}, "gossip.peers[0]",
     "/p2p/PEER_ID"),
    ({**MISSION, "gossip": {"peers": ["localhost:4001"]}}, "gossip.peers[0]", "multiaddr"),
    ({**MISSION, "gossip": {"peers": [PEER, PEER]}}, "gossip.peers[1]", "listed twice"),
    ({**MISSION, "gossip": {"key": 7}}, "gossip.key", "non-empty string"),
    ({**MISSION, "gossip": {"store": ""}}, "gossip.store", "non-empty string"),
    ({**MISSION, "tasks": {"registry": REG}}, "tasks.attestations", "missing"),
    ({**MISSION, "tasks": {"attestations": ATT}}, "tasks.registry", "missing"),
    ({**MISSION, "tasks": {**TASKS, "registry": "0x22"}}, "tasks.registry", "40 hex digits"),
    ({**MISSION, "tasks": {**TASKS, "registry": ATT}}, "tasks.registry",
     "the attestations contract"),
    ({**MISSION, "tasks": {**TASKS, "model": "nope.bin"}}, "tasks.model", "no such file"),
    ({**MISSION, "tasks": {**TASKS, "from_block": -1}}, "tasks.from_block", "got -1"),
    ({**MISSION, "tasks": {**TASKS, "submit": "yes"}}, "tasks.submit", "true or false"),
    ({**MISSION, "tasks": {**TASKS, "submit_delay": "soon"}}, "tasks.submit_delay",
     "positive duration"),
    ({**MISSION, "tasks": {**TASKS, "submit_delay": False}}, "tasks.submit_delay",
     "got false"),
    ({**MISSION, "tasks": {**TASKS, "fallback": -1}}, "tasks.fallback", "got -1"),
    ({**MISSION, "tasks": {**TASKS, "quorum": 2}}, "tasks.quorum", "unknown key"),
    ({"wallet": {"password_file": "nope"}}, "wallet.password_file", "no such file"),
    ({"wallet": {"pin_file": "pin"}}, "wallet.pin_file", 'not used by backend "keystore"'),
    ({"wallet": {"token": "orbital"}}, "wallet.token", 'not used by backend "keystore"'),
    ({"wallet": {"backend": "pkcs11", "password_file": "pw"}}, "wallet.password_file",
     'not used by backend "pkcs11"'),
    ({"wallet": {"backend": "pkcs11", "token": ""}}, "wallet.token", "non-empty string"),
]


@pytest.mark.parametrize(("change", "key", "fragment"), _BAD,
                         ids=[f"{key}-{i}" for i, (_, key, _) in enumerate(_BAD)])
def test_refusals_name_the_key(change: dict[str, Any], key: str, fragment: str,
                               tmp_path: Path) -> None:
    error = _refused(_doc(**change), tmp_path)
    assert error.key == key
    assert str(error).startswith(f"{key}: ")
    assert fragment in str(error), str(error)


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_node_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[node\nchain_id = 1\n")
    with pytest.raises(ConfigError, match="not TOML") as info:
        load_node_config(bad)
    assert "\n" not in str(info.value)
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_node_config(bad)


def test_plan_with_the_node(tmp_path: Path) -> None:
    plan = {"format": "orbital-contact-plan", "version": 1, "contacts": [
        {"source": "A", "target": "GS", "class": "S-band", "start": 0.0, "end": 10.0,
         "rate_bps": {"forward": 1000, "reverse": 1000}, "delay_s": [[0.0, 0.01]],
         "loss": 0.0}]}
    (tmp_path / "p.json").write_text(json.dumps(plan))
    config = parse_node_config(_doc(link={"plan": "p.json", "node": "GS"}), tmp_path)
    assert config.link is not None and config.link.plan == tmp_path / "p.json"
    assert (config.link.links, config.link.time_scale, config.link.start) == ((), 1.0, None)
    scaled = parse_node_config(_doc(
        link={"plan": "p.json", "node": "GS", "links": ["A-GS"], "time_scale": 60,
              "start": datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC), "epoch": 1.5e9},
        watch={"accounts": ["0x" + "ab" * 20],
               "calls": [{"to": "0x" + "cd" * 20, "data": "0x70a08231"}]}), tmp_path)
    assert scaled.link is not None
    assert (scaled.link.links, scaled.link.time_scale, scaled.link.start,
            scaled.link.epoch) == (("A-GS",), 60.0, 5.0, 1.5e9)
    assert scaled.watch.accounts == (b"\xab" * 20,)
    assert scaled.watch.calls == ((b"\xcd" * 20, bytes.fromhex("70a08231")),)
    assert node_options(scaled).config is scaled


def test_mission_sections(tmp_path: Path) -> None:
    (tmp_path / "pin").write_text("1234\n")
    (tmp_path / "inputs").mkdir()
    config = parse_node_config(_doc(
        wallet={"backend": "pkcs11", "home": "w", "token": "sat-1", "pin_file": "pin"},
        gossip={"listen": "127.0.0.1:4002", "peers": [PEER], "key": "id/gossip.key"},
        tasks={**TASKS, "inputs": "inputs", "from_block": 7, "submit": False,
               "submit_delay": "1m", "fallback": 5}), tmp_path)
    assert config.wallet is not None and config.gossip is not None and config.tasks is not None
    assert (config.wallet.backend, config.wallet.token, config.wallet.pin_file) == \
        ("pkcs11", "sat-1", tmp_path / "pin")
    assert (config.gossip.host, config.gossip.port, config.gossip.peers) == \
        ("127.0.0.1", 4002, (PEER,))
    assert config.gossip.key == tmp_path / "id" / "gossip.key"
    assert config.gossip.store == tmp_path / "data" / "gossip.sqlite"
    tasks = config.tasks
    assert (tasks.attestations, tasks.registry) == (b"\x11" * 20, b"\x22" * 20)
    assert (tasks.inputs, tasks.model, tasks.from_block) == (tmp_path / "inputs", None, 7)
    assert (tasks.submit, tasks.submit_delay, tasks.fallback) == (False, 60.0, 5.0)
    defaults = parse_node_config(_doc(**MISSION), tmp_path)
    assert defaults.gossip is not None and defaults.tasks is not None
    assert (defaults.gossip.host, defaults.gossip.port, defaults.gossip.peers) == \
        ("127.0.0.1", 0, ())
    assert defaults.gossip.key == tmp_path / "data" / "gossip.key"
    assert defaults.tasks.inputs == tmp_path / "data" / "inputs"
    assert (defaults.tasks.submit, defaults.tasks.submit_delay, defaults.tasks.fallback) == \
        (True, 0.0, 30.0)


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.name.startswith(("sat-", "genesis"))],
                         ids=lambda p: p.name)
def test_shipped_mission_sections_load_once_uncommented(path: Path) -> None:
    """The commented [gossip]/[tasks] blocks of the shipped configs are valid once the
    deployment's addresses and the peers' ids are filled in."""
    import tomllib

    lines, inside = [], False
    for line in path.read_text().splitlines():
        if line == "# [gossip]":
            inside = True
        if inside and not line.startswith("#"):
            inside = False
        if inside:
            line = line.removeprefix("# ").removeprefix("#")
        lines.append(line)
    peer = PEER.rsplit("/p2p/", 1)[1]
    text = "\n".join(lines).replace('attestations = "0x..."', f'attestations = "{ATT}"')
    text = text.replace('registry = "0x..."', f'registry = "{REG}"')
    text = re.sub(r"<SAT\d peer id>|PEER_ID", peer, text).replace("HOST/tcp/PORT",
                                                                   "127.0.0.1/tcp/4001")
    config = parse_node_config(tomllib.loads(text), path.parent)
    assert config.gossip is not None and config.tasks is not None
    assert config.tasks.attestations == b"\x11" * 20 and config.gossip.peers


def test_the_log_file_follows_the_config_and_gets_every_line(tmp_path: Path) -> None:
    """``[log] file`` (the compose placement's satellites: their log in their volume, where
    the ground reads their events) is resolved against the file and receives the lines the
    stream does, in the same format; a second setup does not duplicate them."""
    import io
    import logging

    from node.logs import setup_logging

    config = parse_node_config(_doc(log={"format": "json", "file": "logs/node.log"}), tmp_path)
    assert config.log.file == tmp_path / "logs" / "node.log"
    assert config.log.level == "info"
    config.log.file.parent.mkdir()
    stream = io.StringIO()
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        setup_logging("json", "info", stream, file=config.log.file)
        setup_logging("json", "info", stream, file=config.log.file)  # replaces, not adds
        logging.getLogger("orbital.test").info("hello %s", "there")
        logging.getLogger("orbital.test").debug("not at info")
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
    written = config.log.file.read_text().splitlines()
    assert written == stream.getvalue().splitlines()
    assert len(written) == 1 and json.loads(written[0])["msg"] == "hello there"
    assert parse_node_config(_doc(), tmp_path).log.file is None


def test_a_log_file_that_cannot_be_opened_fails_the_node_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "node.toml"
    path.write_text('[node]\nchain_id = 31337\ndata_dir = "d"\n[upstreams]\n'
                    'urls = ["http://127.0.0.1:9"]\n[trust]\nmode = "quorum"\n'
                    '[log]\nfile = "no/such/dir/node.log"\n')
    done = subprocess.run([sys.executable, "-m", "node.cli.main", "node", "run", "--config",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"orbital: log file {tmp_path / 'no/such/dir/node.log'}: No such file or directory"]
