"""The node's configuration file, read by ``orbital node run --config FILE`` (TOML).

Every section but ``[node]``, ``[upstreams]`` and ``[trust]`` is optional; unknown keys,
wrong types and bad values are refused with one line naming the key, e.g.
``node.chain_id: want an integer 0..2^64-1, got "x"``. Relative paths are resolved against
the directory of the file. Durations are a number of seconds or ``"<integer><s|m|h|d>"``::

    [node]
    chain_id = 31337
    data_dir = "data/genesis-1"      # header store, light client, outbox
    rpc = "127.0.0.1:8545"           # the verified JSON-RPC (port 0: any free one)
    history = 256                    # ancestors of each anchor kept linked
    refresh = "12s"                  # how often to ask the trust source for a head
    chain = "mainnet"                # fork schedule: a name or a genesis/forkenv file

    [upstreams]                      # JSON-RPCs the node does not trust
    urls = ["http://127.0.0.1:8545", "infura=https://...", {name = "a", url = "http://..."}]

    [trust]
    mode = "checkpoint"              # checkpoint | quorum | ground | beacon
    checkpoint = "17:0xabc..."       # checkpoint: NUMBER:HASH
    quorum = 2                       # quorum: K of the upstreams (default all)
    operators = ["0x...", "0x..."]   # ground: whose signed heads count
    threshold = 2                    # ground: M of the operators
    heads_dir = "heads"              # ground: where signed heads arrive
    max_head_age = "1h"              # ground: older signed heads are refused
    beacon_url = "http://..."        # beacon: a Beacon API server
    network = "mainnet"              # beacon: a name or a consensus config.yaml

    [link]
    plan = "plan.json"               # a sim_link contact plan (without one the node probes)
    node = "SAT1"                    # this node's name in it
    links = ["SAT1-WEILHEIM"]        # the links its upstreams are behind (default: all of
                                     # the node's ground passes)
    time_scale = 1                   # plan seconds per wall second (emulation only)
    start = "2026-11-23T00:00:00Z"   # plan time at `epoch` (default: real time, scale 1)
    epoch = 1795000000.0             # UNIX time at which the plan is at `start` (default:
                                     # when the node starts); give `orbital link run` the same

    [watch]                          # prefetched at every contact, answered during LOS
    accounts = ["0x..."]             # balance, nonce and code of these (and the wallet's)
    calls = [{to = "0x...", data = "0x..."}]   # eth_calls whose state is proven in advance

    [wallet]                         # the on-board signer ([tasks] needs it)
    backend = "keystore"             # keystore | pkcs11 (overrides wallet.toml's)
    home = "wallet"                  # the wallet's home directory (wallet.toml, keystores/,
                                     # the pinned policy.toml; `orbital wallet` makes it)
    token = "orbital"                # pkcs11: token label (default: wallet.toml's)
    password_file = "secrets/pw"     # keystore: file (mode 600) holding the password; left
                                     # out: $ORBITAL_KEYSTORE_PASSWORD, or a prompt on a tty
    pin_file = "secrets/pin"         # pkcs11: file (mode 600) holding the user PIN; left
                                     # out: $ORBITAL_HSM_PIN, or a prompt on a tty
                                     # (the key: wallet.toml's `key`, or its only key)

    [gossip]                         # attestation gossip between satellites (libp2p)
    listen = "127.0.0.1:0"           # TCP address of the libp2p host (port 0: any free one)
    peers = ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW..."]  # neighbours, dialled and kept
    key = "gossip.key"               # seed of the peer identity, created at first start
                                     # (default DATA_DIR/gossip.key): a stable peer id
    store = "gossip.sqlite"          # delivered messages (default DATA_DIR/gossip.sqlite)

    [tasks]                          # AI tasks: run, attest, certify, submit (needs
                                     # [wallet] and [gossip]; [gossip] needs [tasks])
    attestations = "0x..."           # TaskAttestations (its TaskPosted logs, the EIP-712
                                     # domain, where certificates go)
    registry = "0x..."               # SatelliteRegistry (who may attest)
    inputs = "inputs"                # where the uplink drops task inputs (any file name;
                                     # matched by keccak256 = the task's inputHash; names
                                     # starting with "." or ending ".tmp" are skipped)
    model = "digits-int8.bin"        # weights file (default: the committed digits model)
    from_block = 0                   # first block scanned for TaskPosted (default: the
                                     # oldest anchored block at first start)
    submit = true                    # false: attest only, never submit certificates
    submit_delay = "0s"              # wait after a certificate forms before submitting
    fallback = "30s"                 # ... plus this per signer ranked before us (the
                                     # lowest-address signer submits first)

    [power]                          # the battery (needs [link] with a plan that has
                                     # eclipses, and [tasks]): a task runs only when its
                                     # energy fits, else it waits for sunlight
    capacity_wh = 20                 # usable battery energy
    solar_w = 20                     # array output in sunlight
    idle_w = 8                       # the bus, always
    task_w = 40                      # more while a task runs
    task_s = 600                     # how long a task keeps the payload busy (plan s)
    reserve_wh = 6                   # never go below (safe mode)
    initial_wh = 14                  # charge at the first start (default: full)

    [outbox]
    path = "outbox.sqlite"           # default DATA_DIR/outbox.sqlite
    max_age = "1d"                   # queued entries older than this expire

    [metrics]
    listen = "127.0.0.1:9100"        # Prometheus endpoint (left out: none)

    [log]
    format = "text"                  # text | json (one JSON object per line)
    level = "info"                   # debug | info | warning | error
    file = "node.log"                # also append the lines here (left out: stderr only)
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from node.chain.anchor import Anchor, parse_anchor
from node.chain.errors import MalformedInputError
from node.rpc.upstream import Endpoint
from node.service import NodeOptions

UINT64_MAX = 2**64 - 1
TRUST_MODES = ("checkpoint", "quorum", "ground", "beacon")
MODE_FIELDS = {"checkpoint": {"checkpoint"}, "quorum": {"quorum"},
               "ground": {"operators", "threshold", "heads_dir", "max_head_age"},
               "beacon": {"beacon_url", "network"}}
WALLET_BACKENDS = ("keystore", "pkcs11")
BACKEND_FIELDS = {"keystore": {"password_file"}, "pkcs11": {"token", "pin_file"}}
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
BEACON_NETWORKS = ("mainnet", "sepolia", "hoodi")
_DURATION = re.compile(r"([0-9]+)([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NODE_NAME = re.compile(r"[A-Za-z0-9_.]+\Z")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}\Z")


class ConfigError(Exception):
    """The configuration file is unusable: one line naming the key (``key``) and what was
    wrong with it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


@dataclass(frozen=True)
class TrustConfig:
    mode: str
    checkpoint: Anchor | None = None
    quorum: int | None = None
    operators: tuple[bytes, ...] = ()
    threshold: int = 0
    heads_dir: Path | None = None
    max_head_age: float = 3600.0
    beacon_url: str | None = None
    network: str = "mainnet"


@dataclass(frozen=True)
class LinkConfig:
    plan: Path
    node: str
    links: tuple[str, ...] = ()  # empty: every ground pass of ``node``
    time_scale: float = 1.0
    start: float | None = None  # plan time at ``epoch``; None: real time
    epoch: float | None = None  # UNIX time; None: when the node starts


@dataclass(frozen=True)
class WatchConfig:
    accounts: tuple[bytes, ...] = ()
    calls: tuple[tuple[bytes, bytes], ...] = ()  # (to, data)


@dataclass(frozen=True)
class WalletConfig:
    backend: str = "keystore"
    home: Path | None = None  # None: the wallet's own default ($ORBITAL_HOME, ~/.orbital)
    token: str | None = None  # pkcs11 token label; None: wallet.toml's
    password_file: Path | None = None  # keystore; None: the wallet CLI's env var or prompt
    pin_file: Path | None = None  # pkcs11; None: the wallet CLI's env var or prompt


@dataclass(frozen=True)
class GossipConfig:
    host: str
    port: int  # 0: any free port
    key: Path  # seed file of the peer identity (created at first start)
    store: Path
    peers: tuple[str, ...] = ()  # multiaddrs ending /p2p/<peer id>


@dataclass(frozen=True)
class TasksConfig:
    attestations: bytes
    registry: bytes
    inputs: Path
    model: Path | None = None  # None: the committed digits model
    from_block: int | None = None  # None: the oldest anchored block at first start
    submit: bool = True
    submit_delay: float = 0.0
    fallback: float = 30.0


@dataclass(frozen=True)
class PowerConfig:
    """``[power]``: :class:`node.tasks.energy.PowerBudget` and how long a task runs."""

    capacity_wh: float
    solar_w: float
    idle_w: float
    task_w: float
    task_s: float
    reserve_wh: float = 0.0
    initial_wh: float | None = None  # None: full


@dataclass(frozen=True)
class OutboxConfig:
    path: Path
    max_age: float = 86400.0


@dataclass(frozen=True)
class MetricsConfig:
    host: str
    port: int


@dataclass(frozen=True)
class LogConfig:
    format: str = "text"
    level: str = "info"
    file: Path | None = None
    """Where the log lines also go (appended), besides stderr."""


@dataclass(frozen=True)
class NodeConfig:
    """A validated configuration file; every path is absolute."""

    source: Path
    chain_id: int
    data_dir: Path
    upstreams: tuple[Endpoint, ...]
    trust: TrustConfig
    outbox: OutboxConfig
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 8545
    history: int = 256
    refresh: float = 12.0
    chain: str | None = None
    link: LinkConfig | None = None
    watch: WatchConfig = WatchConfig()
    wallet: WalletConfig | None = None
    gossip: GossipConfig | None = None
    tasks: TasksConfig | None = None
    power: PowerConfig | None = None
    metrics: MetricsConfig | None = None
    log: LogConfig = LogConfig()


def load_node_config(path: str | Path) -> NodeConfig:
    """Read and validate ``path``; raises :class:`ConfigError` (one line naming the key)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not TOML: {exc}") from None
    return parse_node_config(doc, path.resolve().parent, source=path.resolve())


def parse_node_config(doc: Mapping[str, Any], base: Path,
                      source: Path | None = None) -> NodeConfig:
    """Validate a parsed document; relative paths are resolved against ``base``."""
    _keys(doc, "", {"node", "upstreams", "trust"},
          {"link", "watch", "wallet", "gossip", "tasks", "power", "outbox", "metrics", "log"})
    node = _table(doc, "node")
    _keys(node, "node", {"chain_id", "data_dir"}, {"rpc", "history", "refresh", "chain"})
    data_dir = _path(node, "node.data_dir", base)
    rpc_host, rpc_port = _host_port(node.get("rpc", "127.0.0.1:8545"), "node.rpc")
    upstreams = _upstreams(_table(doc, "upstreams"))
    _mission_sections(doc)
    return NodeConfig(
        source=source or base, chain_id=_int(node["chain_id"], "node.chain_id", 0, UINT64_MAX,
                                              "0..2^64-1"),
        data_dir=data_dir, upstreams=upstreams,
        trust=_trust(_table(doc, "trust"), base, len(upstreams)),
        outbox=_outbox(_table(doc, "outbox", {}), base, data_dir),
        rpc_host=rpc_host, rpc_port=rpc_port,
        history=_int(node.get("history", 256), "node.history", 1, 2**32 - 1, "1..2^32-1"),
        refresh=_duration(node.get("refresh", 12.0), "node.refresh"),
        chain=_chain(node.get("chain"), base),
        link=_link(_table(doc, "link"), base) if "link" in doc else None,
        watch=_watch(_table(doc, "watch", {})),
        wallet=_wallet(_table(doc, "wallet"), base) if "wallet" in doc else None,
        gossip=_gossip(_table(doc, "gossip"), base, data_dir) if "gossip" in doc else None,
        tasks=_tasks(_table(doc, "tasks"), base, data_dir) if "tasks" in doc else None,
        power=_power(_table(doc, "power"), doc) if "power" in doc else None,
        metrics=_metrics(_table(doc, "metrics")) if "metrics" in doc else None,
        log=_log(_table(doc, "log", {}), base))


def node_options(config: NodeConfig, overrides: Mapping[str, Any] | None = None
                 ) -> NodeOptions:
    """The :class:`NodeOptions` of ``config``, with ``overrides`` (NodeOptions field names
    to values: the flags given on the command line; a value of None means "not given")
    taking precedence over the file."""
    trust = config.trust
    values: dict[str, Any] = {
        "upstreams": tuple(f"{e.name}={e.url}" for e in config.upstreams),
        "trust": trust.mode, "chain_id": config.chain_id, "data_dir": config.data_dir,
        "rpc_host": config.rpc_host, "rpc_port": config.rpc_port,
        "checkpoint": trust.checkpoint, "quorum": trust.quorum, "chain": config.chain,
        "history": config.history, "refresh": config.refresh,
        "beacon_url": trust.beacon_url, "network": trust.network,
        "operators": trust.operators, "threshold": trust.threshold,
        "heads_dir": trust.heads_dir, "max_head_age": trust.max_head_age, "config": config}
    names = {f.name for f in dataclasses.fields(NodeOptions)}
    for name, value in (overrides or {}).items():
        if name not in names:
            raise ValueError(f"node_options: {name!r} is not a NodeOptions field")
        if value is None or (name == "upstreams" and not value):
            continue
        values[name] = tuple(value) if name in ("upstreams", "operators") else value
    if "data_dir" in values:
        values["data_dir"] = Path(values["data_dir"])
    if values.get("heads_dir") is not None:
        values["heads_dir"] = Path(values["heads_dir"])
    return NodeOptions(**values)


# -- sections ---------------------------------------------------------------------------


def _upstreams(table: Mapping[str, Any]) -> tuple[Endpoint, ...]:
    _keys(table, "upstreams", {"urls"}, set())
    urls = table["urls"]
    if not isinstance(urls, list) or not urls:
        raise ConfigError("upstreams.urls", f"want a non-empty array of URLs, got "
                                            f"{_show(urls)}")
    out: list[Endpoint] = []
    for i, item in enumerate(urls):
        key = f"upstreams.urls[{i}]"
        try:
            if isinstance(item, str):
                endpoint = Endpoint.parse(item)
            elif isinstance(item, dict):
                _keys(item, key, {"url"}, {"name"})
                url = _str(item["url"], f"{key}.url")
                endpoint = (Endpoint(_str(item["name"], f"{key}.name"), url) if "name" in item
                            else Endpoint.parse(url))
            else:
                raise ConfigError(key, f"want \"URL\", \"NAME=URL\" or {{name, url}}, got "
                                       f"{_show(item)}")
        except ValueError as exc:
            raise ConfigError(key, str(exc)) from None
        if any(e.name == endpoint.name for e in out):
            raise ConfigError(key, f"upstream name {endpoint.name!r} is used twice")
        out.append(endpoint)
    return tuple(out)


def _trust(table: Mapping[str, Any], base: Path, upstreams: int) -> TrustConfig:
    fields = set().union(*MODE_FIELDS.values())
    _keys(table, "trust", {"mode"}, fields)
    mode = _choice(table["mode"], "trust.mode", TRUST_MODES)
    for name in sorted(fields - MODE_FIELDS[mode]):
        if name in table:
            raise ConfigError(f"trust.{name}", f"not used by mode {json.dumps(mode)}; remove "
                                               f"it")
    if mode == "checkpoint":
        if "checkpoint" not in table:
            raise ConfigError("trust.checkpoint", "missing: mode \"checkpoint\" needs "
                                                  "\"NUMBER:HASH\"")
        text = _str(table["checkpoint"], "trust.checkpoint")
        try:
            anchor = parse_anchor(text, detail="config trust.checkpoint")
        except MalformedInputError as exc:
            raise ConfigError("trust.checkpoint", str(exc)) from None
        return TrustConfig(mode, checkpoint=anchor)
    if mode == "quorum":
        quorum = None
        if "quorum" in table:
            quorum = _int(table["quorum"], "trust.quorum", 1, upstreams,
                          f"1..{upstreams} (one per upstream)")
        return TrustConfig(mode, quorum=quorum)
    if mode == "ground":
        if "operators" not in table:
            raise ConfigError("trust.operators", "missing: mode \"ground\" needs the "
                                                 "operators' addresses")
        operators = _addresses(table["operators"], "trust.operators")
        if "threshold" not in table:
            raise ConfigError("trust.threshold", "missing: mode \"ground\" needs M of the "
                                                 "operators")
        threshold = _int(table["threshold"], "trust.threshold", 1, len(operators),
                         f"1..{len(operators)} (at most the operators)")
        heads = _path(table, "trust.heads_dir", base) if "heads_dir" in table else None
        age = _duration(table.get("max_head_age", 3600.0), "trust.max_head_age")
        return TrustConfig(mode, operators=operators, threshold=threshold, heads_dir=heads,
                           max_head_age=age)
    if "beacon_url" not in table:
        raise ConfigError("trust.beacon_url", "missing: mode \"beacon\" needs a Beacon API URL")
    url = _url(table["beacon_url"], "trust.beacon_url")
    network = _str(table.get("network", "mainnet"), "trust.network")
    if network not in BEACON_NETWORKS:
        network = str(_existing(base / network, "trust.network",
                                f"not {', '.join(BEACON_NETWORKS)} nor a config.yaml"))
    return TrustConfig(mode, beacon_url=url, network=network)


def _link(table: Mapping[str, Any], base: Path) -> LinkConfig:
    from sim_link.plan import PlanError, plan_from_json

    _keys(table, "link", {"plan", "node"}, {"links", "time_scale", "start", "epoch"})
    plan_path = _existing(_path(table, "link.plan", base), "link.plan", "no such file")
    node = _str(table["node"], "link.node")
    if not _NODE_NAME.match(node):
        raise ConfigError("link.node", f"want letters, digits, '_' and '.', got {_show(node)}")
    try:
        plan = plan_from_json(plan_path.read_bytes())
    except (OSError, PlanError) as exc:
        raise ConfigError("link.plan", f"{plan_path}: {exc}") from None
    if node not in plan.nodes():
        raise ConfigError("link.node", f"{node!r} has no contact in {plan_path.name} (it has "
                                       f"{', '.join(sorted(plan.nodes()))})")
    links = _links(table.get("links", []), plan, node)
    scale = _positive(table.get("time_scale", 1.0), "link.time_scale")
    start = _instant(table["start"], "link.start") if "start" in table else None
    epoch = _positive(table["epoch"], "link.epoch") if "epoch" in table else None
    if start is None and (scale != 1.0 or epoch is not None):
        raise ConfigError("link.start", "missing: a time_scale or an epoch needs the plan "
                                        "time it starts at")
    return LinkConfig(plan_path, node, links, scale, start, epoch)


def _links(value: Any, plan: Any, node: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError("link.links", f"want an array of \"NODE-PEER\", got {_show(value)}")
    out: list[str] = []
    for i, item in enumerate(value):
        key = f"link.links[{i}]"
        name = _str(item, key)
        ends = name.split("-")
        if len(ends) != 2 or node not in ends:
            raise ConfigError(key, f"want \"{node}-PEER\" (a link of this node), got "
                                   f"{_show(name)}")
        if not plan.for_link(name):
            raise ConfigError(key, f"{name} has no contact in the plan")
        if name in out:
            raise ConfigError(key, f"{name} is listed twice")
        out.append(name)
    return tuple(out)


def _watch(table: Mapping[str, Any]) -> WatchConfig:
    _keys(table, "watch", set(), {"accounts", "calls"})
    accounts = _addresses(table["accounts"], "watch.accounts") if "accounts" in table else ()
    calls = table.get("calls", [])
    if not isinstance(calls, list):
        raise ConfigError("watch.calls", f"want an array of {{to, data}}, got {_show(calls)}")
    out: list[tuple[bytes, bytes]] = []
    for i, call in enumerate(calls):
        key = f"watch.calls[{i}]"
        if not isinstance(call, dict):
            raise ConfigError(key, f"want a table {{to, data}}, got {_show(call)}")
        _keys(call, key, {"to"}, {"data"})
        to = _address(call["to"], f"{key}.to")
        data = call.get("data", "0x")
        if not isinstance(data, str) or not re.fullmatch(r"0x([0-9a-fA-F]{2})*", data):
            raise ConfigError(f"{key}.data", f"want 0x-hex bytes, got {_show(data)}")
        out.append((to, bytes.fromhex(data[2:])))
    return WatchConfig(accounts, tuple(out))


def _wallet(table: Mapping[str, Any], base: Path) -> WalletConfig:
    _keys(table, "wallet", set(), {"backend", "home", "token", "password_file", "pin_file"})
    backend = _choice(table.get("backend", "keystore"), "wallet.backend", WALLET_BACKENDS)
    home = _path(table, "wallet.home", base) if "home" in table else None
    for name in sorted({"token", "password_file", "pin_file"} - BACKEND_FIELDS[backend]):
        if name in table:
            raise ConfigError(f"wallet.{name}", f"not used by backend {json.dumps(backend)}; "
                                                f"remove it")
    token = _str(table["token"], "wallet.token") if "token" in table else None
    files = {name: _existing(_path(table, f"wallet.{name}", base), f"wallet.{name}",
                             "no such file")
             for name in ("password_file", "pin_file") if name in table}
    return WalletConfig(backend, home, token, files.get("password_file"), files.get("pin_file"))


def _power(table: Mapping[str, Any], doc: Mapping[str, Any]) -> PowerConfig:
    from node.tasks.energy import EnergyError, PowerBudget

    _keys(table, "power", {"capacity_wh", "solar_w", "idle_w", "task_w", "task_s"},
          {"reserve_wh", "initial_wh"})
    if "tasks" not in doc or "link" not in doc:
        raise ConfigError("power", "needs [tasks] (what draws it) and [link] (a plan with "
                                   "the satellite's eclipses)")
    values = {}
    for name in ("capacity_wh", "solar_w", "idle_w", "task_w", "reserve_wh", "initial_wh"):
        if name in table:
            value = table[name]
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 <= value < 1e9:
                raise ConfigError(f"power.{name}", f"want a number >= 0, got {_show(value)}")
            values[name] = float(value)
    try:
        budget = PowerBudget(values["capacity_wh"], values["solar_w"], values["idle_w"],
                             values["task_w"], values.get("reserve_wh", 0.0))
    except EnergyError as exc:
        raise ConfigError("power", str(exc).removeprefix("power budget: ")) from None
    initial = values.get("initial_wh")
    if initial is not None and not budget.reserve_wh <= initial <= budget.capacity_wh:
        raise ConfigError("power.initial_wh", f"want {budget.reserve_wh:g}.."
                                              f"{budget.capacity_wh:g} Wh, got {initial:g}")
    return PowerConfig(budget.capacity_wh, budget.solar_w, budget.idle_w, budget.task_w,
                       _positive(table["task_s"], "power.task_s"), budget.reserve_wh, initial)


def _mission_sections(doc: Mapping[str, Any]) -> None:
    """[tasks] signs with [wallet] and talks over [gossip]; [gossip] carries [tasks]'
    attestations: each needs the others."""
    if "tasks" in doc and "wallet" not in doc:
        raise ConfigError("wallet", "missing: [tasks] signs attestations and certificates with "
                                    "the wallet")
    if "tasks" in doc and "gossip" not in doc:
        raise ConfigError("gossip", "missing: [tasks] exchanges attestations over gossip")
    if "gossip" in doc and "tasks" not in doc:
        raise ConfigError("tasks", "missing: [gossip] carries attestations for the [tasks] "
                                   "contracts")


def _gossip(table: Mapping[str, Any], base: Path, data_dir: Path) -> GossipConfig:
    _keys(table, "gossip", set(), {"listen", "peers", "key", "store"})
    host, port = _host_port(table.get("listen", "127.0.0.1:0"), "gossip.listen")
    key = _path(table, "gossip.key", base) if "key" in table else data_dir / "gossip.key"
    store = _path(table, "gossip.store", base) if "store" in table else \
        data_dir / "gossip.sqlite"
    peers = table.get("peers", [])
    if not isinstance(peers, list):
        raise ConfigError("gossip.peers", f"want an array of multiaddrs, got {_show(peers)}")
    out: list[str] = []
    for i, item in enumerate(peers):
        out.append(_peer(item, f"gossip.peers[{i}]"))
        if out[-1] in out[:-1]:
            raise ConfigError(f"gossip.peers[{i}]", f"{out[-1]} is listed twice")
    return GossipConfig(host, port, key, store, tuple(out))


def _peer(value: Any, key: str) -> str:
    """A multiaddr ending in ``/p2p/<peer id>`` (what a peer's ``orbital_status`` shows)."""
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr

    text = _str(value, key)
    try:
        info_from_p2p_addr(multiaddr.Multiaddr(text))
    except Exception:  # multiaddr and libp2p raise several kinds
        raise ConfigError(key, f"want a multiaddr like \"/ip4/HOST/tcp/PORT/p2p/PEER_ID\", "
                               f"got {_show(text)}") from None
    return text


def _tasks(table: Mapping[str, Any], base: Path, data_dir: Path) -> TasksConfig:
    _keys(table, "tasks", {"attestations", "registry"},
          {"inputs", "model", "from_block", "submit", "submit_delay", "fallback"})
    attestations = _address(table["attestations"], "tasks.attestations")
    registry = _address(table["registry"], "tasks.registry")
    if registry == attestations:
        raise ConfigError("tasks.registry", "is the attestations contract's address: give "
                                            "the SatelliteRegistry's")
    inputs = _path(table, "tasks.inputs", base) if "inputs" in table else data_dir / "inputs"
    if inputs.exists() and not inputs.is_dir():
        raise ConfigError("tasks.inputs", f"not a directory: {inputs}")
    model = (_existing(_path(table, "tasks.model", base), "tasks.model", "no such file")
             if "model" in table else None)
    from_block = (_int(table["from_block"], "tasks.from_block", 0, UINT64_MAX, "0..2^64-1")
                  if "from_block" in table else None)
    submit = table.get("submit", True)
    if not isinstance(submit, bool):
        raise ConfigError("tasks.submit", f"want true or false, got {_show(submit)}")
    delay = _delay(table.get("submit_delay", 0), "tasks.submit_delay")
    fallback = _delay(table.get("fallback", "30s"), "tasks.fallback")
    return TasksConfig(attestations, registry, inputs, model, from_block, submit, delay,
                       fallback)


def _delay(value: Any, key: str) -> float:
    """A duration that may be zero."""
    if type(value) in (int, float) and value == 0:
        return 0.0
    return _duration(value, key)


def _outbox(table: Mapping[str, Any], base: Path, data_dir: Path) -> OutboxConfig:
    _keys(table, "outbox", set(), {"path", "max_age"})
    path = _path(table, "outbox.path", base) if "path" in table else \
        data_dir / "outbox.sqlite"
    return OutboxConfig(path, _duration(table.get("max_age", 86400.0), "outbox.max_age"))


def _metrics(table: Mapping[str, Any]) -> MetricsConfig:
    _keys(table, "metrics", {"listen"}, set())
    return MetricsConfig(*_host_port(table["listen"], "metrics.listen"))


def _log(table: Mapping[str, Any], base: Path) -> LogConfig:
    _keys(table, "log", set(), {"format", "level", "file"})
    return LogConfig(_choice(table.get("format", "text"), "log.format", LOG_FORMATS),
                     _choice(table.get("level", "info"), "log.level", LOG_LEVELS),
                     _path(table, "log.file", base) if "file" in table else None)


def _chain(value: Any, base: Path) -> str | None:
    if value is None:
        return None
    from node.chain.forks import NETWORKS

    name = _str(value, "node.chain")
    if name in NETWORKS:
        return name
    return str(_existing(base / name, "node.chain",
                         f"not {', '.join(sorted(NETWORKS))} nor a genesis/forkenv file"))


# -- values -----------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as the error shows it: TOML-like scalars, else its kind."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def _keys(obj: Mapping[str, Any], where: str, required: set[str], optional: set[str]
          ) -> None:
    for key in obj:
        if key not in required | optional:
            name = f"{where}.{key}" if where else key
            allowed = ", ".join(sorted(required | optional))
            raise ConfigError(name, f"unknown key (allowed here: {allowed})")
    for key in sorted(required):
        if key not in obj:
            raise ConfigError(f"{where}.{key}" if where else key, "missing")


def _table(doc: Mapping[str, Any], key: str, default: Any = None) -> Mapping[str, Any]:
    value = doc.get(key, default)
    if not isinstance(value, dict):
        raise ConfigError(key, f"want a table [{key}], got {_show(value)}")
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"want a non-empty string, got {_show(value)}")
    return value


def _int(value: Any, key: str, low: int, high: int, span: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(key, f"want an integer {span}, got {_show(value)}")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(key, f"want one of {', '.join(choices)}, got {_show(value)}")
    return value


def _duration(value: Any, key: str) -> float:
    if isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(int(m[1]) * _UNITS[m[2]])
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(key, f"want a positive duration (seconds, or \"<integer><s|m|h|d>\" "
                               f"like \"6h\"), got {_show(value)}")
    return seconds


def _positive(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e12:
        raise ConfigError(key, f"want a positive number, got {_show(value)}")
    return float(value)


def _instant(value: Any, key: str) -> float:
    """A TOML date-time with a zone (or an ISO 8601 string ending in Z/offset): UNIX
    seconds."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(key, f"want an ISO 8601 time such as "
                                   f"\"2026-11-23T00:00:00Z\", got {_show(value)}") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigError(key, f"want a time with its zone (e.g. 2026-11-23T00:00:00Z), got "
                               f"{_show(value)}")
    return value.timestamp()


def _path(table: Mapping[str, Any], key: str, base: Path) -> Path:
    return (base / _str(table[key.rpartition(".")[2]], key)).resolve()


def _existing(path: Path, key: str, problem: str) -> Path:
    if not path.exists():
        raise ConfigError(key, f"{problem}: {path}")
    return path


def _host_port(value: Any, key: str) -> tuple[str, int]:
    text = value if isinstance(value, str) else ""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(key, f"want \"HOST:PORT\" (port 0..65535), got {_show(value)}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _url(value: Any, key: str) -> str:
    url = _str(value, key)
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise ConfigError(key, f"want an http(s):// URL, got {_show(value)}")
    return url


def _addresses(value: Any, key: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(key, f"want a non-empty array of 0x-addresses, got {_show(value)}")
    out: list[bytes] = []
    for i, item in enumerate(value):
        raw = _address(item, f"{key}[{i}]")
        if raw in out:
            raise ConfigError(f"{key}[{i}]", f"{item} is listed twice")
        out.append(raw)
    return tuple(out)


def _address(value: Any, key: str) -> bytes:
    """A 0x-address; a mixed-case one must carry a valid EIP-55 checksum."""
    from wallet.hashing import checksum_address

    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ConfigError(key, f"want a 0x-address (40 hex digits), got {_show(value)}")
    raw = bytes.fromhex(value[2:])
    mixed = value[2:] not in (value[2:].lower(), value[2:].upper())
    if mixed and checksum_address(raw) != value:
        raise ConfigError(key, f"bad EIP-55 checksum in {_show(value)}")
    return raw
