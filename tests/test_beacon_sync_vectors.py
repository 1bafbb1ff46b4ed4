"""The light-client sync protocol on every consensus-spec-tests ``light_client/sync`` case
(minimal preset) in ../shared/vectors: bootstrap from the trusted root, then each step of
``steps.yaml`` (process_update, force_update, upgrade_store) and its checks of the finalized
and optimistic headers (slot, beacon root, execution root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cramjam
import pytest
import yaml

from node.chain.beacon.config import NetworkConfig
from node.chain.beacon.containers import light_client_types
from node.chain.beacon.sync_protocol import (
    LightClientStore,
    get_lc_execution_root,
    initialize_light_client_store,
    process_light_client_store_force_update,
    process_light_client_update,
)

from vectors import vector_path

VECTORS = vector_path("consensus-light-client")
CASES = sorted(VECTORS.glob("minimal/*/sync/pyspec_tests/*"))


def _snappy(path: Path) -> bytes:
    return bytes(cramjam.snappy.decompress_raw(path.read_bytes()))


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def _check(config: NetworkConfig, store: LightClientStore, checks: dict[str, Any],
           where: str) -> None:
    for name in ("finalized_header", "optimistic_header"):
        if name not in checks:
            continue
        header, want = getattr(store, name), checks[name]
        assert header.beacon.slot == want["slot"], f"{where}: {name}.slot"
        assert header.beacon.hash_tree_root() == _hex(want["beacon_root"]), \
            f"{where}: {name}.beacon_root"
        if "execution_root" in want:
            assert get_lc_execution_root(config, header) == _hex(want["execution_root"]), \
                f"{where}: {name}.execution_root"


def test_every_sync_case_is_present() -> None:
    assert len(CASES) >= 20, f"expected the shared light_client/sync cases under {VECTORS}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_sync_case(case: Path) -> None:
    meta = yaml.safe_load((case / "meta.yaml").read_text())
    config = NetworkConfig.from_yaml((case / "config.yaml").read_text(),
                                     genesis_validators_root=_hex(meta["genesis_validators_root"]))

    def types_of(digest: str) -> Any:
        return light_client_types(config.fork_by_digest(_hex(digest)).name, "minimal")

    bootstrap = types_of(meta["bootstrap_fork_digest"]).LightClientBootstrap.decode(
        _snappy(case / "bootstrap.ssz_snappy"))
    store = initialize_light_client_store(config, _hex(meta["trusted_block_root"]), bootstrap)
    steps = yaml.safe_load((case / "steps.yaml").read_text())
    for index, step in enumerate(steps):
        (kind, body), = step.items()
        where = f"step {index} ({kind})"
        if kind == "process_update":
            update = types_of(body["update_fork_digest"]).LightClientUpdate.decode(
                _snappy(case / f"{body['update']}.ssz_snappy"))
            process_light_client_update(config, store, update, body["current_slot"])
        elif kind == "force_update":
            process_light_client_store_force_update(config, store, body["current_slot"])
        elif kind == "upgrade_store":
            types_of(body["store_fork_digest"])  # headers are read by their slot's fork
        else:
            pytest.fail(f"{where}: unknown step kind")
        _check(config, store, body.get("checks", {}), where)
