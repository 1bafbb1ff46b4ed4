"""orbital: the satellite daemon — chain verification, local RPC, tasks, attestations, gossip."""
