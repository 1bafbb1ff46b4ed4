"""Catch a light client up to the chain's head from a Beacon API server it does not trust.

:func:`catch_up` is what a node runs when a ground-station or inter-satellite link returns
(altair ``light-client/light-client.md``, "Light client sync process"): it asks for exactly the
``LightClientUpdate``s the gap needs -- one per sync-committee period from the first period
whose committee the store lacks through the current period (:func:`~node.chain.beacon.api.
fetch_plan`) -- applies them, asks again while that moved the store, then takes the latest
finality and optimistic updates. Everything fetched passes the sync protocol before it counts;
a server that sends an update the store cannot verify stops the catch-up with
:class:`~node.chain.beacon.sync_protocol.UpdateRejected`. Finality or optimistic updates that
bring nothing newer than what the store has are skipped, not errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.chain.beacon.api import BeaconApiClient, fetch_plan
from node.chain.beacon.store import ExecutionHead, LightClient

MAX_ROUNDS = 64


@dataclass(frozen=True)
class CatchUp:
    """What :func:`catch_up` did."""

    updates: int
    """``LightClientUpdate``s fetched and applied."""
    requests: int
    """HTTP requests made."""
    bytes_received: int
    """Response bytes (headers and bodies) received."""
    finalized: ExecutionHead | None
    optimistic: ExecutionHead | None


async def catch_up(client: LightClient, api: BeaconApiClient, *,
                   max_rounds: int = MAX_ROUNDS) -> CatchUp:
    """Bring ``client`` to the head ``api`` serves; see the module docstring."""
    requests, received = len(api.transfers), api.bytes_received
    applied = 0
    for _ in range(max_rounds):
        period = client.config.sync_committee_period_at_slot(client.current_slot)
        plan = fetch_plan(client.finalized_period, client.next_sync_committee_known, period)
        if plan is None:
            break
        before = (client.store.finalized_header, client.next_sync_committee_known)
        updates = await api.fetch(plan)
        for update in updates:
            client.process_update(update)
            applied += 1
        if (client.store.finalized_header, client.next_sync_committee_known) == before:
            break  # the server has nothing that moves us further: finality will tell
    finality = await api.finality_update()
    if finality.attested_header.beacon.slot > client.store.finalized_header.beacon.slot:
        client.process_finality_update(finality)
    optimistic = await api.optimistic_update()
    if optimistic.attested_header.beacon.slot > client.store.optimistic_header.beacon.slot:
        client.process_optimistic_update(optimistic)
    return CatchUp(applied, len(api.transfers) - requests, api.bytes_received - received,
                   client.finalized_execution, client.optimistic_execution)
