"""Record the example that ``orbital demo`` verifies, from a real anvil devnet.

Run after ``scripts/setup.sh --test``:  .venv/bin/python scripts/capture_example.py

It starts anvil, mines a block with every transaction envelope (tests/devnet_scenario.py)
and writes what any JSON-RPC client would fetch into ``node/examples/``: the headers
of the chain so far, the block with full transactions, its receipts and a state proof
of the contract it deployed. The files are committed; nothing here runs at demo time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from node.devnet import CHAIN_ID, DEV_PRIVATE_KEYS, start_anvil  # noqa: E402

from devnet_scenario import mine_every_envelope  # noqa: E402

OUT = ROOT / "node" / "examples"


def main() -> None:
    with start_anvil() as devnet:
        rpc = devnet.rpc
        scenario = mine_every_envelope(rpc, DEV_PRIVATE_KEYS, CHAIN_ID)
        number = hex(scenario.block_number)
        head = int(rpc("eth_blockNumber"), 16)
        files = {
            "headers.json": [rpc("eth_getBlockByNumber", hex(n), False) for n in range(head + 1)],
            "block.json": rpc("eth_getBlockByNumber", number, True),
            "receipts.json": rpc("eth_getBlockReceipts", number),
            "proof.json": rpc("eth_getProof", scenario.contract, list(scenario.storage_keys),
                              number),
            "source.json": {"client": rpc("web3_clientVersion"), "chainId": CHAIN_ID,
                            "hardfork": "prague", "block": scenario.block_number,
                            "txTypes": list(scenario.tx_types)},
        }
    OUT.mkdir(exist_ok=True)
    for name, value in files.items():
        (OUT / name).write_text(json.dumps(value, indent=1) + "\n")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
