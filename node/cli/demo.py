"""``orbital demo``: the most complete job the project can do so far.

Verifies chain data captured from a real anvil devnet (``node/examples``, recorded by
``scripts/capture_example.py``): the headers hash, obey the consensus rules and link into a
header store backward from a trusted anchor (a fabricated child of the anchor links but is
not anchored); a block holding every transaction envelope rebuilds its roots and senders
from its body and receipts; a state proof proves an account and its storage. Then
tampered copies of each are shown to be refused. The wallet signs within a pinned policy
and its audit log catches an edit. Last, three satellites on 127.0.0.1 gossip a signed AI
task result, re-execute it, co-sign and assemble the same k-of-n certificate. Exit 0 only if
every genuine input verifies and every tampered one is refused.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from node.chain.anchor import Anchor, AnchorSource
from node.chain.block import verify_block
from node.chain.errors import ChainError
from node.chain.forks import ANVIL
from node.chain.header import verify_header
from node.chain.header_rules import calculate_base_fee_per_gas
from node.chain.header_store import HeaderStore
from node.chain.proof import verify_account_proof

TX_NAMES = {0: "legacy", 1: "EIP-2930", 2: "EIP-1559", 3: "EIP-4844", 4: "EIP-7702"}


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    parser = commands.add_parser(
        "demo", help="verify bundled devnet data end to end, then show tampering refused",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", metavar="FILE",
                        help="header store SQLite file to use (default: a temporary one)")
    parser.set_defaults(run=_run)


def _example(name: str) -> Any:
    return json.loads(resources.files("node.examples").joinpath(name).read_text())


def _short(value: bytes | str) -> str:
    text = value if isinstance(value, str) else "0x" + value.hex()
    return text[:10] + ".." + text[-4:]


def _run(args: argparse.Namespace) -> int:
    source = _example("source.json")
    headers_json, block, receipts, proof = (
        _example(n) for n in ("headers.json", "block.json", "receipts.json", "proof.json"))
    print(f"orbital demo: verifying data captured from {source['client']} "
          f"(chain {source['chainId']}, {source['hardfork']})\n")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.store) if args.store else Path(tmp) / "headers.sqlite"
        headers = [verify_header(h, f"headers[{i}]") for i, h in enumerate(headers_json)]
        anchor = Anchor(headers[-1].number, headers[-1].hash, AnchorSource.USER,
                        "pinned: the devnet head recorded with the example data")
        with HeaderStore(path, ANVIL) as store:  # the example was recorded on anvil
            store.add_anchor(anchor, headers[-1])
            store.add_many(reversed(headers[:-1]))
            head = store.head
            assert head is not None and all(store.get(h.hash) for h in headers)
            print(f"[1/6] headers: {len(headers)} hashed, rule-checked and linked backward "
                  f"from the anchor {anchor.number} {_short(anchor.hash)} ({anchor.source}) "
                  f"to block {headers[0].number}")
            base_fee = calculate_base_fee_per_gas(head.gas_limit, head.gas_used,
                                                  head.base_fee_per_gas or 0)
            forged = dataclasses.replace(  # obeys every rule; commits to a made-up state
                head, number=head.number + 1, parent_hash=head.hash, gas_used=0,
                timestamp=head.timestamp + 12, base_fee_per_gas=base_fee,
                excess_blob_gas=0, blob_gas_used=0, state_root=b"\x11" * 32)
            store.add(forged)
            status = store.status(forged.hash)
            print(f"      a fabricated child of the head (any stateRoot) links but is "
                  f"{'NOT anchored: never served as verified' if status == 'linked' else status}")

    report = verify_block(block, receipts)
    kinds = ", ".join(TX_NAMES[t.tx_type] + ("" if t.tx_type or t.chain_id is None else "/155")
                      for t in report.transactions)
    print(f"[2/6] block {report.header.number}: {len(report.transactions)} transactions "
          f"({kinds})\n      verified: {', '.join(report.verified)}")

    proven = verify_account_proof(report.header.state_root, proof)
    slots = ", ".join(f"{_short(s.key)}={hex(s.value)}" for s in proven.storage)
    print(f"[3/6] proof: account {proven.address.hex()[:8]}.. nonce {proven.account.nonce}, "
          f"balance {proven.account.balance} wei, storage {slots}\n      verified against "
          f"stateRoot {_short(report.header.state_root)}")

    print("[4/6] tampered copies must be refused:")
    refused = [_expect_refusal(name, check) for name, check in _tamperings(block, receipts,
                                                                             proof, report)]
    from node.cli.demo_wallet import run_wallet_demo  # eth-account: only when it runs

    with tempfile.TemporaryDirectory() as tmp:
        wallet_ok = run_wallet_demo(Path(tmp), print)
    from node.cli.demo_constellation import run_constellation_demo  # libp2p: only now

    with tempfile.TemporaryDirectory() as tmp:
        constellation_ok = run_constellation_demo(Path(tmp), print)
    if all(refused) and wallet_ok and constellation_ok:
        print("\ndemo ok: every genuine input verified, every tampered copy refused, "
              "the wallet signed only within policy and its audit log caught an edit, "
              "three satellites certified a re-executed AI task over gossip")
        return 0
    print("\ndemo FAILED: see the lines marked as a bug above")
    return 1


def _tamperings(block: dict[str, Any], receipts: list[Any], proof: dict[str, Any],
                report: Any) -> list[tuple[str, Callable[[], object]]]:
    def edited(obj: Any, edit: Callable[[Any], None]) -> Any:
        clone = copy.deepcopy(obj)
        edit(clone)
        return clone

    def bump(value: str) -> str:
        return hex(int(value, 16) + 1)

    state_root = report.header.state_root
    return [
        ("header timestamp +1 s",
         lambda: verify_header(edited(block, lambda b: b.update(timestamp=bump(b["timestamp"]))))),
        ("transaction value +1 wei",
         lambda: verify_block(edited(block, lambda b: b["transactions"][1].update(
             value=bump(b["transactions"][1]["value"]))), receipts)),
        ("transactions reordered",
         lambda: verify_block(edited(block, lambda b: b["transactions"].reverse()))),
        ("receipt log data changed",
         lambda: verify_block(block, edited(receipts, lambda r: r[2]["logs"][0].update(
             data="0x" + "00" * 32)))),
        ("account balance inflated",
         lambda: verify_account_proof(state_root, edited(
             proof, lambda p: p.update(balance=bump(p["balance"]))))),
        ("storage values swapped",
         lambda: verify_account_proof(state_root, edited(proof, _swap_storage_values))),
    ]


def _swap_storage_values(proof: dict[str, Any]) -> None:
    first, second = proof["storageProof"][0], proof["storageProof"][1]
    first["value"], second["value"] = second["value"], first["value"]


def _expect_refusal(name: str, check: Callable[[], object]) -> bool:
    try:
        check()
    except ChainError as exc:
        print(f"      {name:<28} refused: {exc}")
        return True
    print(f"      {name:<28} ACCEPTED (this is a bug)")
    return False
