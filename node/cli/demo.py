"""``orbital demo``: the whole constellation, end to end, behind the link.

anvil is started as the chain on the ground, the contracts are deployed and each satellite
is registered under an operator. Every satellite is an ``orbital node run`` process whose
upstream is reached only through its ground links and whose gossip goes only through the
inter-satellite links, both emulated from one contact plan computed from real-looking
element sets (sun-synchronous, 550 km), at a time scale. The ground posts AI tasks on the
chain and uplinks heads (signed by 2 of 3 operators) and task inputs during passes; the
satellites learn the tasks from verified logs, run them, gossip and co-sign attestations,
and land certificates through their outboxes; the contract says what landed. A live
status while it runs; at the end a report, ``report.json`` and ``timeline.png`` in --out.

``--containers`` flies the same scenario as containers of the image (``docker build -t
orbital .``): anvil, the ground (head signer, link emulators) and one container per satellite
on a network of its own, from the compose file it writes into --out (``--write-compose``
writes only the file); the same status and report, copied out of the ground's volume.

``--offline`` instead verifies bundled devnet data (headers, a block, a state proof, each
tampered copy refused), the wallet's policy and audit log, and a three-satellite gossip
certificate in one process: no devnet needed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import sys
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
        "demo", help="the constellation end to end: verified chain behind the link, AI tasks, "
        "certificates on chain", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--satellites", type=int, default=3, metavar="N",
                        help="satellites (default 3)")
    parser.add_argument("--stations", type=int, default=2, metavar="N",
                        help="ground stations, polar ones first (1-4, default 2)")
    parser.add_argument("--hours", type=float, default=6.0,
                        help="orbital hours to fly (default 6)")
    parser.add_argument("--time-scale", type=float, default=150.0, metavar="X",
                        help="plan seconds per wall second (default 150)")
    parser.add_argument("--tasks", type=int, default=3, help="tasks to post (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="task schedule and inputs")
    parser.add_argument("--start", type=_orbital_time, metavar="TIME",
                        help="orbital time the flight starts at, ISO 8601 UTC "
                        "(2026-12-07T02:00:00Z): the same passes, eclipses and plane whenever "
                        "it runs (default: now)")
    parser.add_argument("--out", metavar="DIR", default="demo-out",
                        help="where report.json, timeline.png and the run's files go "
                        "(default demo-out; DIR/run must not exist)")
    parser.add_argument("--wallets", choices=("auto", "keystore", "softhsm"), default="auto",
                        help="where the satellites' keys live: SoftHSM2 tokens (PKCS#11) or "
                        "keystores; auto (default): SoftHSM2 when it is installed")
    parser.add_argument("--fault", choices=("station-outage", "kill", "partition", "liar"),
                        help="make something go wrong (see node/demo/faults.py): a station "
                        "lost for an orbit, a satellite killed -9 mid-task and restarted, an "
                        "ISL partition that heals, a lying upstream in front of SAT1")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--containers", action="store_true",
                       help="run it as containers (compose.yaml for these options, written "
                       "into --out): anvil, the ground, each satellite in its own; needs "
                       "Docker and the image (scripts/containers.sh runs it all)")
    where.add_argument("--write-compose", metavar="FILE",
                       help="write the compose file for these options to FILE and exit")
    where.add_argument("--compose-ground", action="store_true",
                       help="be the ground container of the compose file (--containers "
                       "starts it): the devnet is http://anvil:8545, the satellites' volumes "
                       "are under /sats, their containers start their nodes")
    parser.add_argument("--offline", action="store_true",
                        help="verify bundled devnet data and gossip in one process instead")
    parser.add_argument("--store", metavar="FILE",
                        help="--offline: header store SQLite file to use (default temporary)")
    parser.set_defaults(run=_run)


def _orbital_time(text: str) -> float:
    """``--start``: an ISO 8601 time with its zone (``Z`` or ``+00:00``), as UNIX seconds."""
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-07T02:00:00Z)") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z for UTC")
    return when.timestamp()


def _run(args: argparse.Namespace) -> int:
    if args.offline:
        return _offline(args)
    import asyncio

    from node.demo.display import Progress, summary
    from node.demo.run import DemoOptions, finish, run_demo

    for name, low in (("satellites", 1), ("tasks", 0)):
        if getattr(args, name) < low:
            raise SystemExit(f"orbital demo: --{name} must be at least {low}")
    if args.time_scale <= 0 or args.hours <= 0:
        raise SystemExit("orbital demo: --hours and --time-scale must be positive")
    if args.containers or args.write_compose or args.compose_ground:
        if args.fault == "kill":
            raise SystemExit("orbital demo: --fault kill needs the nodes as child processes "
                             "(not in containers); the other faults fly in containers")
        if args.wallets == "softhsm":
            raise SystemExit("orbital demo: in containers the satellites' wallets are "
                             "keystores (--wallets softhsm is the local demo's)")
    options = DemoOptions(satellites=args.satellites, stations=args.stations, hours=args.hours,
                          time_scale=args.time_scale, tasks=args.tasks, seed=args.seed,
                          out=Path(args.out), fault=args.fault, wallets=args.wallets,
                          start=args.start)
    if args.containers or args.write_compose:
        return _containers(options, args.write_compose)
    if args.compose_ground:
        from node.demo.compose import SATELLITES_DIR
        from node.demo.placement import ANVIL_HOST, COMPOSE

        options = dataclasses.replace(options, placement=COMPOSE, wallets="keystore",
                                      anvil_url=f"http://{ANVIL_HOST}:8545",
                                      satellites_dir=Path(SATELLITES_DIR))
    print(f"orbital demo: {options.satellites} satellites, {options.stations} stations, "
          f"{options.hours:g} orbital hours at x{options.time_scale:g} "
          f"(about {options.hours * 3600 / options.time_scale:.0f} s of flight)")
    flight = asyncio.run(run_demo(options, Progress()))
    document, report_path, png = finish(flight, options.out.resolve())
    print()
    print(summary(document))
    print(f"report: {report_path}\ntimeline: {png}")
    return 0 if document["landed"] == document["posted"] else 1


def _containers(options: Any, write_compose: str | None) -> int:
    """``--write-compose`` and ``--containers`` (:mod:`node.demo.compose`) for ``options``
    (a :class:`node.demo.run.DemoOptions`)."""
    from node.demo.compose import ContainersError, compose_text, run_containers

    if write_compose:
        Path(write_compose).write_text(compose_text(options))
        print(f"wrote {write_compose}")
        return 0
    out = options.out.resolve()
    print(f"orbital demo --containers: {options.satellites} satellites, {options.stations} "
          f"stations, {options.hours:g} orbital hours at x{options.time_scale:g}; compose file "
          f"{out / 'compose.yaml'}", flush=True)
    try:
        code, report = run_containers(options, out)
    except ContainersError as exc:
        print(f"orbital demo: {exc}", file=sys.stderr)
        return 2
    if not report.exists():
        print(f"orbital demo: the ground wrote no report (exit {code})", file=sys.stderr)
        return code or 1
    document = json.loads(report.read_text())  # (the ground printed its summary above)
    print(f"copied out of the ground's volume: {report}, {out / 'timeline.png'}")
    return 0 if document["landed"] == document["posted"] else 1


def _example(name: str) -> Any:
    return json.loads(resources.files("node.examples").joinpath(name).read_text())


def _short(value: bytes | str) -> str:
    text = value if isinstance(value, str) else "0x" + value.hex()
    return text[:10] + ".." + text[-4:]


def _offline(args: argparse.Namespace) -> int:
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
