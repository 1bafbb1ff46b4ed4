"""node/chain/beacon/follow.py: a light client four sync-committee periods behind catches up
from a Beacon API server on 127.0.0.1 serving a chain the test signs itself -- it asks for
exactly the updates the gap needs, then the finality and optimistic updates, and ends at the
head's execution block; a server that lies stops it with the failed check named."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from node.chain.beacon.api import BeaconApiClient
from node.chain.beacon.follow import catch_up
from node.chain.beacon.store import LightClient
from node.chain.beacon.sync_protocol import UpdateRejected

from beacon_sim import BeaconChainSim, SimClock, sim_network

PREFIX = "/eth/v1/beacon/light_client"
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
