"""Where the demo's processes run and the addresses by which they reach each other.

Two placements of the same run (:mod:`node.demo.run`):

* **local** (``orbital demo``): every process on 127.0.0.1 -- the link emulators in the
  demo's process on ports the kernel picks, each satellite's node a child process with its
  RPC on a free port and its gossip host on a free port.
* **compose** (``orbital demo --containers``, ``compose.yaml``): the demo's process is the
  ``ground`` container; it reaches the devnet as ``anvil``, each satellite is the container
  ``sat1``, ``sat2``... on a network of its own whose only other member is the ground, so
  that what a satellite reaches -- the chain through its ground links, its neighbours through
  the inter-satellite links -- it reaches only through the emulators, which listen in the
  ground on fixed ports (:data:`LINK_PORT_BASE` and up, in the order of the run's links).
  The satellites' files are their volumes, mounted in the ground under ``/sats/SATN`` for
  provisioning and uplinks (what a ground segment does before launch and during passes).
"""

from __future__ import annotations

from dataclasses import dataclass

GROUND_HOST = "ground"
ANVIL_HOST = "anvil"
NODE_RPC_PORT = 8545
GOSSIP_PORT = 4001
LINK_PORT_BASE = 9000
"""The ground's emulators listen on LINK_PORT_BASE + i for the run's i-th link."""
MAX_LINKS = 1000


@dataclass(frozen=True)
class Placement:
    """The addresses of one placement (module docstring); ``compose`` False is local."""

    compose: bool = False

    def emulator_listen(self, index: int) -> tuple[str, int]:
        """Where the run's ``index``-th link emulator listens."""
        if not self.compose:
            return "127.0.0.1", 0
        if not 0 <= index < MAX_LINKS:
            raise ValueError(f"link {index}: the ground serves at most {MAX_LINKS} links")
        return "0.0.0.0", LINK_PORT_BASE + index

    @property
    def link_host(self) -> str:
        """The host name a satellite dials an emulator by."""
        return GROUND_HOST if self.compose else "127.0.0.1"

    def satellite_host(self, name: str) -> str:
        """The host name the ground reaches satellite ``name`` by (its gossip port, its RPC)."""
        return service_name(name) if self.compose else "127.0.0.1"

    @property
    def node_rpc(self) -> str:
        """The ``[node] rpc`` of a satellite's node."""
        return f"0.0.0.0:{NODE_RPC_PORT}" if self.compose else "127.0.0.1:0"

    @property
    def gossip_host(self) -> str:
        """The host a satellite's gossip host listens on."""
        return "0.0.0.0" if self.compose else "127.0.0.1"

    def peer_multiaddr(self, port: int, peer_id: str) -> str:
        """A neighbour's multiaddr through the emulator on ``port``."""
        if self.compose:
            return f"/dns4/{GROUND_HOST}/tcp/{port}/p2p/{peer_id}"
        return f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id}"

    def node_url(self, name: str) -> str:
        """A satellite's RPC URL as the ground reaches it (compose placement only: locally
        the node prints the URL it chose)."""
        return f"http://{service_name(name)}:{NODE_RPC_PORT}"


def service_name(satellite: str) -> str:
    """The compose service (and host) name of a satellite: ``SAT1`` -> ``sat1``."""
    return satellite.lower()


LOCAL = Placement()
COMPOSE = Placement(compose=True)
