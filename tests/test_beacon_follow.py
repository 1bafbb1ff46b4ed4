"""node/chain/beacon/follow.py: a light client four sync-committee periods behind catches up
from a Beacon API server on 127.0.0.1 serving a chain the test signs itself -- it asks for
exactly the updates the gap needs, then the finality and optimistic updates, and ends at the
head's execution block; a server that lies stops it with the failed check named."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from node.chain.beacon.api import BeaconApiClient
from node.chain.beacon.follow import catch_up
from node.chain.beacon.store import LightClient
from node.chain.beacon.sync_protocol import UpdateRejected

from beacon_sim import BeaconChainSim, SimClock, sim_network

PREFIX = "/eth/v1/beacon/light_client"
REPO = Path(__file__).resolve().parents[1]
CONFIG = sim_network({"altair": 0, "bellatrix": 0, "capella": 0, "deneb": 2})
CHECKPOINT_SLOT = 40          # period 0 (64 slots per period in the minimal preset)
HEAD_SLOT = 300               # period 4


@pytest.fixture(scope="module")
def sim() -> BeaconChainSim:
    return BeaconChainSim(CONFIG)


def _versioned(sim: BeaconChainSim, obj: Any) -> dict[str, Any]:
    return {"version": sim.fork(obj.attested_header.beacon.slot), "data": obj.to_json()}


class Server:
    """Serves the simulated chain's light-client data as JSON and logs each request."""

    def __init__(self, sim: BeaconChainSim, lie: Callable[[Any], Any] | None = None) -> None:
        self.sim = sim
        self.lie = lie or (lambda update: update)
        self.log: list[str] = []

    def update_of(self, period: int) -> Any:
        """The period's best update: attested near its end (or the head), signed by it."""
        attested = min(self.sim.period_start(period + 1) - 8, HEAD_SLOT - 1)
        return self.sim.update(attested)

    async def updates(self, request: web.Request) -> web.Response:
        start, count = int(request.query["start_period"]), int(request.query["count"])
        self.log.append(f"updates {start}+{count}")
        head_period = self.sim.period(HEAD_SLOT)
        body = [_versioned(self.sim, self.lie(self.update_of(p)))
                for p in range(start, min(start + count, head_period + 1))]
        return web.json_response(body)

    async def bootstrap(self, request: web.Request) -> web.Response:
        self.log.append("bootstrap")
        if request.match_info["root"] != "0x" + self.sim.root(CHECKPOINT_SLOT).hex():
            raise web.HTTPNotFound(text="no bootstrap for that block")
        bootstrap = self.sim.bootstrap(CHECKPOINT_SLOT)
        return web.json_response({"version": self.sim.fork(CHECKPOINT_SLOT),
                                  "data": bootstrap.to_json()})

    async def finality(self, request: web.Request) -> web.Response:
        self.log.append("finality")
        return web.json_response(_versioned(self.sim, self.sim.finality_update(HEAD_SLOT - 1)))

    async def optimistic(self, request: web.Request) -> web.Response:
        self.log.append("optimistic")
        return web.json_response(_versioned(self.sim, self.sim.optimistic_update(HEAD_SLOT)))


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Server], Any]]:
    runners: list[web.AppRunner] = []

    async def start(server: Server) -> str:
        app = web.Application()
        app.router.add_get(PREFIX + "/bootstrap/{root}", server.bootstrap)
        app.router.add_get(PREFIX + "/updates", server.updates)
        app.router.add_get(PREFIX + "/finality_update", server.finality)
        app.router.add_get(PREFIX + "/optimistic_update", server.optimistic)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def client_at_checkpoint(sim: BeaconChainSim) -> LightClient:
    clock = SimClock(CONFIG).at_slot(HEAD_SLOT + 1)
    return LightClient.bootstrap(CONFIG, sim.root(CHECKPOINT_SLOT), sim.bootstrap(CHECKPOINT_SLOT),
                                 clock=clock)


async def test_catch_up_asks_for_exactly_the_gap(sim: BeaconChainSim, serve: Any) -> None:
    server = Server(sim)
    url = await serve(server)
    client = client_at_checkpoint(sim)
    async with BeaconApiClient(url, CONFIG, encoding="json") as api:
        done = await catch_up(client, api)
    # one request for periods 0..4 (the checkpoint's own period lacks its next committee;
    # after the five the store knows period 5's committee and needs no more), then the
    # finality and optimistic updates
    assert server.log == ["updates 0+5", "finality", "optimistic"]
    assert done.requests == 3 and done.updates == 5 and done.bytes_received > 0
    finalized_block = sim.finalized_block(HEAD_SLOT - 1)
    assert finalized_block is not None
    assert done.finalized == sim.execution_head(finalized_block.slot)
    assert done.optimistic == sim.execution_head(HEAD_SLOT)
    assert client.store.optimistic_header.beacon.slot == HEAD_SLOT


async def test_an_up_to_date_client_only_asks_for_the_head(sim: BeaconChainSim,
                                                           serve: Any) -> None:
    server = Server(sim)
    url = await serve(server)
    client = client_at_checkpoint(sim)
    async with BeaconApiClient(url, CONFIG, encoding="json") as api:
        await catch_up(client, api)
        server.log.clear()
        again = await catch_up(client, api)
    assert server.log == ["finality", "optimistic"] and again.updates == 0
    assert again.finalized is not None


async def test_a_lying_server_stops_the_catch_up(sim: BeaconChainSim, serve: Any) -> None:
    def lie(update: Any) -> Any:  # someone else's committee signs
        return sim.update(update.attested_header.beacon.slot, signer_period=
                          sim.period(update.attested_header.beacon.slot) + 1)

    url = await serve(Server(sim, lie))
    client = client_at_checkpoint(sim)
    before = client.store
    async with BeaconApiClient(url, CONFIG, encoding="json") as api:
        with pytest.raises(UpdateRejected, match="sync_committee_signature"):
            await catch_up(client, api)
    assert client.store == before  # nothing of the lie was applied


def write_network(directory: Path) -> str:
    """The simulated network as a consensus ``config.yaml`` (+ its genesis validators root)
    for ``--network``."""
    lines = ["PRESET_BASE: 'minimal'", "CONFIG_NAME: 'sim'",
             f"GENESIS_TIME: {CONFIG.genesis_time}",
             f"SECONDS_PER_SLOT: {CONFIG.seconds_per_slot}"]
    for fork in CONFIG.forks:
        key = "GENESIS" if fork.name == "phase0" else fork.name.upper()
        lines.append(f"{key}_FORK_VERSION: 0x{fork.version.hex()}")
        if fork.name != "phase0":
            lines.append(f"{key}_FORK_EPOCH: {fork.epoch}")
    (directory / "config.yaml").write_text("\n".join(lines) + "\n")
    (directory / "genesis_validators_root.txt").write_text(
        "0x" + CONFIG.genesis_validators_root.hex())
    return str(directory)


async def orbital(*argv: str) -> tuple[int, str, str]:
    """``orbital ARGV`` in its own process (the test's event loop keeps serving meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli.main", *argv, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_orbital_node_lc_sync_bootstraps_then_resumes(
        sim: BeaconChainSim, serve: Any, tmp_path: Path) -> None:
    url = await serve(Server(sim))
    net = write_network(tmp_path)
    store = str(tmp_path / "lc.sqlite")
    now = str(CONFIG.slot_start(HEAD_SLOT + 1))
    common = ["node", "lc-sync", "--beacon-url", url, "--store", store, "--network", net,
              "--now", now]
    code, _, err = await orbital(*common)
    assert code == 2 and "pass --checkpoint ROOT to bootstrap it" in err

    root = "0x" + sim.root(CHECKPOINT_SLOT).hex()
    code, out, err = await orbital(*common, "--checkpoint", root)
    assert (code, err) == (0, ""), err
    head = sim.execution_head(HEAD_SLOT)
    assert f"bootstrapped from {root} on sim" in out
    assert "5 update(s) in 3 request(s)" in out  # updates, finality, optimistic
    assert (f"verified optimistic: execution block {head.block_number} "
            f"0x{head.block_hash.hex()}") in out

    code, out, _ = await orbital(*common, "--json")
    report = json.loads(out)
    assert code == 0 and not report["bootstrapped"] and report["updates"] == 0
    assert report["optimistic"]["execution"]["blockNumber"] == head.block_number

    code, _, err = await orbital(*common, "--checkpoint", "0x" + "22" * 32)
    assert code == 1 and f"was bootstrapped from {root}" in err


async def test_orbital_node_lc_sync_refuses_a_lying_server(
        sim: BeaconChainSim, serve: Any, tmp_path: Path) -> None:
    def lie(update: Any) -> Any:
        return sim.update(update.attested_header.beacon.slot,
                          signer_period=sim.period(update.attested_header.beacon.slot) + 1)

    url = await serve(Server(sim, lie))
    code, out, err = await orbital(
        "node", "lc-sync", "--beacon-url", url, "--store", str(tmp_path / "lc.sqlite"),
        "--network", write_network(tmp_path), "--now", str(CONFIG.slot_start(HEAD_SLOT + 1)),
        "--checkpoint", "0x" + sim.root(CHECKPOINT_SLOT).hex())
    assert code == 1 and out == ""
    assert "verification failed: sync_aggregate.sync_committee_signature" in err
    assert len(err.splitlines()) == 1


async def test_beacon_head_trust_gives_the_proven_blocks_as_anchors(sim: BeaconChainSim,
                                                                    serve: Any) -> None:
    """node.rpc.heads.BeaconTrust: the light client caught up from the server; its optimistic
    execution block is ``latest``, its finalized one ``finalized`` (source beacon, with the
    proven stateRoot); a lying server gives no anchor at all."""
    from node.chain.anchor import AnchorSource
    from node.rpc.heads import BeaconTrust

    url = await serve(Server(sim))
    async with BeaconApiClient(url, CONFIG, encoding="json") as api:
        heads = await BeaconTrust(client_at_checkpoint(sim), api).heads()
    optimistic = sim.execution_head(HEAD_SLOT)
    assert (heads.latest.number, heads.latest.hash, heads.latest.state_root) == (
        optimistic.block_number, optimistic.block_hash, optimistic.state_root)
    assert heads.latest.source == AnchorSource.BEACON and "optimistic" in heads.latest.detail
    finalized_block = sim.finalized_block(HEAD_SLOT - 1)
    assert finalized_block is not None and heads.finalized is not None
    assert heads.finalized.hash == sim.execution_head(finalized_block.slot).block_hash

    def lie(update: Any) -> Any:
        return sim.update(update.attested_header.beacon.slot,
                          signer_period=sim.period(update.attested_header.beacon.slot) + 1)

    url = await serve(Server(sim, lie))
    async with BeaconApiClient(url, CONFIG, encoding="json") as api:
        with pytest.raises(UpdateRejected):
            await BeaconTrust(client_at_checkpoint(sim), api).heads()
