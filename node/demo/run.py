"""The demo's run: set the constellation up, fly it through its plan, say what happened.

Stages (each timed for the report):

1. **plan** -- :mod:`node.demo.scenario`: element sets, stations, contacts and eclipses.
2. **ground** -- anvil started, contracts deployed, one keystore wallet per satellite made
   and registered under the operators (round robin), each satellite funded.
3. **links** -- one link emulator per ground link (``SAT-STATION``, in front of the ground's
   chain) and two per inter-satellite link (``A-B`` in front of B's gossip port, ``B-A`` in
   front of A's), all on one :class:`~sim_link.clock.PlanClock`, in this process.
4. **fly** -- the satellites' ``orbital node run --config`` processes, started together;
   then, until every task is landed or the plan ends, the ground's duties at each plan
   time: heads signed by 2 of the 3 operators and inputs of posted tasks uplinked to a
   satellite *during its passes only* (written into its directories, as an uplink would
   leave them), tasks posted on the chain at their scheduled times, and every node's
   ``orbital_status`` and the contract read for the report.

Nothing is faked for the satellites: each learns its tasks from verified ``eth_getLogs``
through its ground links, gossips over the ISL emulators, and lands a certificate through
its outbox; the contract's ``certifiedOutput`` is what says a task landed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from node.demo.events import NodeEvent, read_events
from node.demo.faults import KILL_DOWN_S, faulted_plan, liar
from node.demo.fleet import (
    Hsm,
    LinkClock,
    Satellite,
    await_node,
    make_satellite,
    node_config,
    rpc,
    start_node,
    stop_node,
)
from node.demo.ground import HEAD_THRESHOLD, GroundChain, PostedTask
from node.demo.liar import LyingUpstream
from node.demo.placement import GOSSIP_PORT, LOCAL, Placement
from node.demo.scenario import Scenario, build
from node.demo.timeline import plot_demo
from node.devnet import Anvil, attach_anvil, start_anvil
from node.tasks import model as qmodel
from sim_link.clock import PlanClock
from sim_link.plan import ContactPlan
from sim_link.proxy import Emulator, LinkEmulator
from wallet.files import write_atomic

TILE_BYTES = 64
TILES_PER_TASK = 8
CONTAINER_START_S = 30.0
"""Wall seconds more the satellites' containers are given to start their nodes after their
configuration appears (a swarm took 15 s for two on 2 cores, then missed the first passes)."""
ATTACH_TIMEOUT = 180.0
"""Wall seconds the compose placement's ground waits for the devnet's container."""
SETTLE_WALL_S = 3.0
"""Wall seconds between the nodes serving and the plan's clock starting (peers dial)."""
def start_margin(satellites: int) -> float:
    """Wall seconds the nodes are given to start before the plan's clock starts: 2 s each
    plus a share that grows with the links (inter-satellite ones grow as the square of the
    fleet): 8 s for 3 satellites, 45 s for 10, 285 s for 30 (30 nodes took 212 s to start
    on 2 loaded cores with 782 emulated links in this process)."""
    return 2.0 * satellites + 0.25 * satellites ** 2


@dataclass(frozen=True)
class DemoOptions:
    satellites: int = 3
    stations: int = 2
    hours: float = 6.0
    time_scale: float = 150.0
    tasks: int = 3
    seed: int = 1
    out: Path = Path("demo-out")
    wallets: str = "auto"
    """``keystore``, ``softhsm`` (keys in SoftHSM2 tokens), or ``auto``: SoftHSM2 when it
    is installed."""
    fault: str | None = None
    """One of :data:`node.demo.faults.FAULTS`, or None."""
    start: float | None = None
    """Orbital time (UNIX seconds) the flight starts at: the same passes, eclipses and
    plane whenever it runs; None: now."""
    fallback_s: float = 600.0
    """Plan seconds a certificate signer waits per rank before it submits in another's
    place (the mission's turns; given to the nodes in wall seconds)."""
    placement: Placement = LOCAL
    """Local processes, or the ground container of compose.yaml (:mod:`node.demo.placement`)."""
    anvil_url: str | None = None
    """The devnet to use (the compose file's ``anvil``); None: start one."""
    satellites_dir: Path | None = None
    """Where the satellites' files go (the compose placement: their volumes, mounted in the
    ground); None: beside the run's other files."""


@dataclass
class TaskRecord:
    posted: PostedTask
    uplinked: dict[str, float] = field(default_factory=dict)
    landed_at: float | None = None
    output: bytes | None = None  # as the contract certified it


@dataclass
class Flight:
    """Everything the run touches, for the duties and the report."""

    options: DemoOptions
    scenario: Scenario
    ground: GroundChain
    satellites: list[Satellite]
    clock: PlanClock
    epoch: float
    emulator: Emulator
    schedule: list[float]
    tasks: list[TaskRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    fault_log: list[dict[str, Any]] = field(default_factory=list)
    """What the fault did, when (plan time)."""
    energy: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Each satellite's battery charge (plan time, Wh) as its node reported it."""
    stages: dict[str, float] = field(default_factory=dict)

    def event(self, kind: str, **fields: Any) -> None:
        self.events.append({"t": round(self.clock.now(), 3), "kind": kind, **fields})

    @property
    def plan(self) -> ContactPlan:
        return self.scenario.plan

    def in_contact(self, sat: Satellite, t: float) -> str | None:
        """The station ``sat`` is in contact with at plan time ``t`` (None: none)."""
        for station in self.scenario.stations:
            if self.plan.contact_at(f"{sat.name}-{station.name}", t) is not None:
                return station.name
        return None


async def run_demo(options: DemoOptions, progress: Callable[[Flight], None]) -> Flight:
    """Set up, fly and tear down (module docstring); returns what happened."""
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "run"
    if work.exists():
        raise FileExistsError(f"{work} exists: give another --out or remove it")
    stages: dict[str, float] = {}
    began = time.monotonic()
    scenario = build(options.satellites, options.stations,
                     time.time() if options.start is None else options.start, options.hours)
    work.mkdir()
    (work / "plan.json").write_text(scenario.plan.to_json())
    stages["plan"] = time.monotonic() - began

    began = time.monotonic()
    anvil = await asyncio.to_thread(  # (a swarm may take a minute to start the devnet)
        start_anvil if options.anvil_url is None else
        partial(attach_anvil, options.anvil_url, timeout=ATTACH_TIMEOUT))
    placement = options.placement
    try:
        ground = await asyncio.to_thread(GroundChain.deploy, anvil, work / "ground")
        hsm = None if options.wallets == "keystore" or placement.compose \
            else Hsm.found(work / "hsm")
        if hsm is None and options.wallets == "softhsm":
            raise RuntimeError("--wallets softhsm: SoftHSM2 or p11-kit is not installed "
                               "(scripts/setup.sh --test installs them)")
        satellites = []
        for i, name in enumerate(scenario.satellites):
            sat = await asyncio.to_thread(
                make_satellite, name, (options.satellites_dir or work) / name,
                ground.deployment.chain_id, ground.deployment.attestations,
                GOSSIP_PORT if placement.compose else _free_port(), hsm)
            await asyncio.to_thread(ground.register, sat.address, name, 91001 + i)
            satellites.append(sat)
        stages["ground"] = time.monotonic() - began
        return await _fly(options, scenario, anvil, ground, satellites, work, stages,
                          progress)
    finally:
        await asyncio.to_thread(anvil.stop)


async def _fly(options: DemoOptions, scenario: Scenario, anvil: Anvil, ground: GroundChain,
               satellites: list[Satellite], work: Path, stages: dict[str, float],
               progress: Callable[[Flight], None]) -> Flight:
    epoch = time.time() + SETTLE_WALL_S + start_margin(len(satellites)) + (
        CONTAINER_START_S if options.placement.compose else 0.0)
    clock = PlanClock.from_epoch(scenario.start, options.time_scale, epoch)
    rng = random.Random(options.seed)
    end = scenario.start + options.hours * 3600
    schedule = sorted(scenario.start + rng.uniform(0.02, 0.5) * (end - scenario.start)
                      for _ in range(options.tasks))
    # the fault is in the links (the satellites' plan stays the real one)
    plan = faulted_plan(scenario.plan, options.fault, schedule[0] if schedule else
                        scenario.start, station=scenario.stations[0].name,
                        isolated=satellites[0].name)
    with contextlib.ExitStack() as stack:
        upstreams = {sat.name: anvil.url for sat in satellites}
        if options.fault == "liar":
            lying = stack.enter_context(LyingUpstream(anvil.url, liar(options.seed)))
            upstreams[satellites[0].name] = lying.url
        emulator = Emulator(_emulators(scenario, plan, satellites, upstreams, clock,
                                       options.placement))
        flight = Flight(options, scenario, ground, satellites, clock, epoch, emulator,
                        schedule, stages=stages)
        return await _fly_through(flight, work, stages, progress, end)


async def _fly_through(flight: Flight, work: Path, stages: dict[str, float],
                       progress: Callable[[Flight], None], end: float) -> Flight:
    began = time.monotonic()
    satellites, emulator = flight.satellites, flight.emulator
    async with emulator:
        ports = {name: link.port for name, link in emulator.links.items()}
        for sat in satellites:
            # whole or absent: a satellite's container starts its node once it exists
            write_atomic(sat.config, _config(flight, sat, ports, work).encode())
        stages["links"] = time.monotonic() - began
        began = time.monotonic()
        try:
            starting = asyncio.Semaphore(2 * (os.cpu_count() or 1))  # no start-up stampede

            async def start(sat: Satellite) -> None:
                if flight.options.placement.compose:  # its container waits for node.toml
                    await await_node(sat, flight.options.placement.node_url(sat.name))
                    return
                async with starting:
                    await start_node(sat)
            async with asyncio.TaskGroup() as group:  # one fails: the others are stopped
                for sat in satellites:
                    group.create_task(start(sat))
            stages["start"] = time.monotonic() - began
            began = time.monotonic()
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=10)) as session:
                await _duties(flight, session, progress, end)
            stages["fly"] = time.monotonic() - began
        finally:
            async with asyncio.TaskGroup() as group:
                for sat in satellites:  # (containers stop with the compose project)
                    group.create_task(stop_node(sat))
    return flight


def _emulators(scenario: Scenario, plan: ContactPlan, satellites: list[Satellite],
               upstreams: dict[str, str], clock: PlanClock, placement: Placement
               ) -> list[LinkEmulator]:
    """Every link of ``plan``: a satellite's ground links lead to ``upstreams[name]``."""
    out: list[LinkEmulator] = []
    for sat in satellites:
        host, port = upstreams[sat.name].removeprefix("http://").rsplit(":", 1)
        for station in scenario.stations:
            link = f"{sat.name}-{station.name}"
            if plan.for_link(link):
                out.append(LinkEmulator(plan, link, placement.emulator_listen(len(out)),
                                        (host, int(port)), clock))
    by_name = {s.name: s for s in satellites}
    pairs = sorted({tuple(sorted((c.source, c.target))) for c in plan.contacts
                    if c.source in by_name and c.target in by_name})
    for a, b in pairs:
        for near, far in ((a, b), (b, a)):
            out.append(LinkEmulator(plan, f"{near}-{far}", placement.emulator_listen(len(out)),
                                    (placement.satellite_host(far), by_name[far].gossip_port),
                                    clock))
    return out


def _config(flight: Flight, sat: Satellite, ports: dict[str, int], work: Path) -> str:
    placement = flight.options.placement
    ground = {name: f"http://{placement.link_host}:{port}" for name, port in ports.items()
              if name.startswith(sat.name + "-") and name.split("-", 1)[1]
              in {s.name for s in flight.scenario.stations}}
    by_name = {s.name: s for s in flight.satellites}
    peers = {placement.peer_multiaddr(port, by_name[name.split('-', 1)[1]].peer_id): name
             for name, port in ports.items()
             if name.startswith(sat.name + "-") and name.split("-", 1)[1] in by_name}
    deployment = flight.ground.deployment
    plan = work / "plan.json"
    if placement.compose:  # the satellite's own copy, in its volume
        (sat.root / "plan.json").write_bytes(plan.read_bytes())
        plan = Path("plan.json")
    return node_config(
        sat, chain_id=deployment.chain_id, plan=plan, placement=placement,
        clock=LinkClock(flight.clock.plan_start, flight.epoch, flight.clock.time_scale),
        ground_links=ground, peers=peers, operators=flight.ground.operator_addresses,
        threshold=HEAD_THRESHOLD, attestations=deployment.attestations,
        registry=deployment.registry, from_block=deployment.block,
        fallback=flight.options.fallback_s / flight.clock.time_scale)


async def _duties(flight: Flight, session: aiohttp.ClientSession,
                  progress: Callable[[Flight], None], end: float) -> None:
    """The ground's work and the watch, until every task landed or the plan ends."""
    model = qmodel.load()
    tiles = (Path(qmodel.__file__).parent / "expected" / "digits-inputs.bin").read_bytes()
    rng = random.Random(flight.options.seed)
    pending = list(flight.schedule)
    last_head: dict[str, float] = {}
    while True:
        now = flight.clock.now()
        if now >= end:
            flight.event("plan_end")
            break
        while pending and pending[0] <= now:
            pending.pop(0)
            offset = rng.randrange(0, len(tiles) // TILE_BYTES - TILES_PER_TASK) * TILE_BYTES
            data = tiles[offset: offset + TILE_BYTES * TILES_PER_TASK]
            quorum = min(2, len(flight.satellites))
            posted = await asyncio.to_thread(flight.ground.post_task, model.model_hash, data,
                                             quorum, min(quorum, 2), now)
            flight.tasks.append(TaskRecord(posted))
            flight.event("task_posted", task="0x" + posted.task_id.hex(), block=posted.block)
        await asyncio.to_thread(flight.ground.mine)
        for sat in flight.satellites:
            station = flight.in_contact(sat, now)
            if station is None:
                continue
            if now - last_head.get(sat.name, -1e18) >= 60.0:
                _, text = await asyncio.to_thread(flight.ground.signed_head)
                GroundChain.uplink(sat.heads, "head.json", text.encode())
                last_head[sat.name] = now
            for record in flight.tasks:
                if sat.name not in record.uplinked:
                    GroundChain.uplink(sat.inputs, f"0x{record.posted.task_id.hex()}.bin",
                                       record.posted.input)
                    record.uplinked[sat.name] = now
                    flight.event("input_uplinked", satellite=sat.name, station=station,
                                 task="0x" + record.posted.task_id.hex())
        await _watch(flight, session)
        if flight.options.fault == "kill":
            await _kill_and_restart(flight, now)
        progress(flight)
        if len(flight.tasks) == flight.options.tasks and all(
                r.landed_at is not None for r in flight.tasks) and all(
                _serving(flight, sat) for sat in flight.satellites):  # a killed node is back
            flight.event("all_landed")
            break
        await asyncio.sleep(0.25)


def _serving(flight: Flight, sat: Satellite) -> bool:
    """Whether the node of ``sat`` runs (in the compose placement: it answered once)."""
    if flight.options.placement.compose:
        return sat.rpc_url is not None
    return sat.process is not None and sat.process.returncode is None


async def _kill_and_restart(flight: Flight, now: float) -> None:
    """The ``kill`` fault: SIGKILL the first satellite seen to have run a task whose
    certificate has not landed; restart it :data:`~node.demo.faults.KILL_DOWN_S` later."""
    killed = [e for e in flight.fault_log if e["what"] == "killed"]
    if not killed:
        if all(r.landed_at is not None for r in flight.tasks):
            return
        for sat in flight.satellites:
            tasks = ((flight.status.get(sat.name) or {}).get("mission") or {}).get("tasks")
            if tasks and tasks.get("run", 0) > tasks.get("onChain", 0):
                await stop_node(sat, kill=True)
                flight.status.pop(sat.name, None)
                flight.fault_log.append({"what": "killed", "satellite": sat.name, "t": now})
                flight.event("fault_killed", satellite=sat.name)
                return
    elif not any(e["what"] == "restarted" for e in flight.fault_log) \
            and now >= killed[0]["t"] + KILL_DOWN_S:
        sat = next(s for s in flight.satellites if s.name == killed[0]["satellite"])
        await start_node(sat)
        sat.restarts += 1
        flight.fault_log.append({"what": "restarted", "satellite": sat.name,
                                 "t": flight.clock.now()})
        flight.event("fault_restarted", satellite=sat.name)


async def _watch(flight: Flight, session: aiohttp.ClientSession) -> None:
    for sat in flight.satellites:
        if sat.rpc_url is None:
            continue
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
            status = await rpc(session, sat.rpc_url, "orbital_status")
            flight.status[sat.name] = status
            energy = (status.get("mission") or {}).get("energy")
            if energy is not None:
                flight.energy.setdefault(sat.name, []).append(
                    (flight.clock.now(), energy["chargeWh"]))
    for record in flight.tasks:
        if record.landed_at is None:
            output = await asyncio.to_thread(flight.ground.certified_output,
                                             record.posted.task_id)
            if output != bytes(32):
                record.landed_at, record.output = flight.clock.now(), output
                flight.event("task_landed", task="0x" + record.posted.task_id.hex(),
                             output="0x" + output.hex())


def _free_port() -> int:
    """A free port for a node's gossip host, below the kernel's ephemeral range (Linux:
    32768-60999): the link emulators listen on port 0 after these are chosen, and an
    ephemeral port could be one of them."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free port in 20000..31999 for a gossip host")


def node_events(flight: Flight) -> list[NodeEvent]:
    """Every satellite's mission events, from its node's log, in plan time."""
    return sorted((e for sat in flight.satellites
                   for e in read_events(sat.name, sat.log, flight.scenario.start,
                                        flight.epoch, flight.clock.time_scale)),
                  key=lambda e: e.t)


def report(flight: Flight, events: list[NodeEvent]) -> dict[str, Any]:
    """The JSON report (see ``orbital demo --help``)."""
    links = flight.emulator.state()["links"]
    start = flight.scenario.start

    def since(t: float | None) -> float | None:
        return None if t is None else round(t - start, 1)

    tasks = []
    for record in flight.tasks:
        task = "0x" + record.posted.task_id.hex()
        mine = [e for e in events if e.task == task]
        first = {kind: min((e.t for e in mine if e.kind == kind), default=None)
                 for kind in ("run", "certificate", "submitted")}
        tasks.append({
            "task": task, "postedAt": since(record.posted.posted_at),
            "uplinked": {s: since(t) for s, t in record.uplinked.items()},
            "ranBy": sorted({e.satellite for e in mine if e.kind == "run"}),
            "firstRun": since(first["run"]), "certificateAt": since(first["certificate"]),
            "submittedBy": sorted({e.satellite for e in mine if e.kind == "submitted"}),
            "submittedAt": since(first["submitted"]), "landedAt": since(record.landed_at),
            "input": "0x" + record.posted.input.hex(),
            "certifiedOutput": None if record.output is None else "0x" + record.output.hex(),
            "routedTo": sorted({e.detail[0] for e in mine if e.kind == "routed"})})
    return {
        "options": {k: str(v) if isinstance(v, Path) else
                    ("compose" if v.compose else "local") if isinstance(v, Placement) else v
                    for k, v in vars(flight.options).items()},
        "satellites": flight.scenario.satellites,
        "wallets": "softhsm" if any(s.hsm for s in flight.satellites) else "keystore",
        "stations": [s.name for s in flight.scenario.stations],
        "plane": flight.scenario.plane,
        "clock": {"planStart": start, "epoch": flight.epoch,
                  "timeScale": flight.clock.time_scale},
        "tasks": tasks,
        "posted": len(flight.tasks),
        "landed": sum(r.landed_at is not None for r in flight.tasks),
        "links": {name: {"bytes": state["bytes"], "stalls": state["retransmission_stalls"],
                         **{k: v for k, v in state.items() if k in ("accepted", "refused")}}
                  for name, state in links.items()},
        "nodes": {name: {key: status.get(key) for key in ("mission", "head", "counters")}
                  for name, status in flight.status.items()},
        "energy": {name: {"minWh": min(w for _, w in trace), "maxWh": max(w for _, w in trace),
                          "lastWh": trace[-1][1],
                          "trace": [[round(t - start, 1), w] for t, w in trace[::4]]}
                   for name, trace in flight.energy.items() if trace},
        "fault": None if flight.options.fault is None else {
            "name": flight.options.fault,
            "log": [{**e, "t": since(e["t"])} for e in flight.fault_log],
            "refusals": {name: (status.get("counters") or {}).get("refusals")
                         for name, status in flight.status.items()},
            "lies": {name: (status.get("counters") or {}).get("lies")
                     for name, status in flight.status.items()}},
        "stages": {k: round(v, 3) for k, v in flight.stages.items()},
        "events": flight.events,
    }


def finish(flight: Flight, out: Path) -> tuple[dict[str, Any], Path, Path]:
    """Write ``report.json`` and ``timeline.png`` into ``out``."""
    events = node_events(flight)
    document = report(flight, events)
    path = out / "report.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    png = plot_demo(flight.plan, flight.scenario.satellites,
                    [s.name for s in flight.scenario.stations], events,
                    [r.posted.posted_at for r in flight.tasks],
                    [r.landed_at for r in flight.tasks if r.landed_at is not None],
                    flight.energy, flight.scenario.start, out / "timeline.png",
                    f"orbital demo: {len(flight.satellites)} satellites, "
                    f"{document['landed']} of {document['posted']} tasks landed")
    return document, path, png
