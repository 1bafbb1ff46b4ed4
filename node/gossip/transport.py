"""The libp2p host: identity, Noise, yamux, connection limits.

Noise is the only security transport (py-libp2p's defaults also offer TLS, SECIO and
*plaintext*); yamux muxer; no automatic dialling of peerstore peers (the connection manager's
auto-connector is disabled through its watermarks): we choose our neighbours (ISL topology).
"""

from __future__ import annotations

import hashlib
from typing import Any

import multiaddr
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport

from node.gossip.config import GossipConfig


def seeded_key_pair(seed: bytes | str) -> Any:
    """The ed25519 identity ``GossipNode.start(key_seed=seed)`` uses: its key from
    sha256(seed)."""
    raw = seed.encode() if isinstance(seed, str) else seed
    return create_new_key_pair(hashlib.sha256(raw).digest())


def peer_id_of(seed: bytes | str) -> str:
    """The peer id (base58) of a host started with ``key_seed=seed``, without starting it:
    what a neighbour's ``peers`` entry ends with."""
    return ID.from_pubkey(seeded_key_pair(seed).public_key).to_string()


def make_host(cfg: GossipConfig, key_seed: bytes | str | None,
              listen: multiaddr.Multiaddr) -> Any:
    """A py-libp2p basic host: Noise only, yamux, the auto-connector off."""
    key_pair = create_new_key_pair() if key_seed is None else seeded_key_pair(key_seed)
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    # py-libp2p's auto-connector dials peerstore peers whenever fewer than 100
    # connections are open; we choose our neighbours (ISL topology), so it must never fire.
    connections = ConnectionConfig(min_connections=0, low_watermark=0,
                                   high_watermark=cfg.max_connections,
                                   max_connections=cfg.max_connections)
    return new_host(key_pair=key_pair, sec_opt={NOISE_PROTOCOL_ID: noise},
                    muxer_preference="YAMUX", listen_addrs=[listen],
                    connection_config=connections)


def forget_addresses(host: Any, peer_id: ID) -> None:
    """Before dialling ``peer_id`` at a given address: py-libp2p dials only the first TCP
    address it has for a peer, so a neighbour that came back on a new port would be dialled at
    its old one -- the address we are given replaces whatever the peerstore remembers. A recent
    failed dial must not block this one either (py-libp2p's negative cache)."""
    host.get_peerstore().clear_addrs(peer_id)
    negative = getattr(host.get_network(), "_negative_peer_cache", None)
    if negative is not None:
        negative.evict(str(peer_id))
