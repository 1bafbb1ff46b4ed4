"""Gas used by the attestation contracts, beside published reference points.

Usage (from the repository root)::

    python -m benchmarks.gas            # anvil if installed, else eth-tester; prints the table
    python -m benchmarks.gas --quick    # fewer sizes, for the smoke test
    python -m benchmarks.gas --check    # exit 1 if a target is missed
    python -m benchmarks.gas --json     # results as JSON instead of the table
    python -m benchmarks.gas --chain eth-tester

What is measured: ``gasUsed`` of real transactions (intrinsic 21,000 and calldata included),
on anvil (``--hardfork prague``, the realistic devnet) or, when anvil is not installed,
eth-tester on py-evm (also Prague: the figures are the same EVM schedule).

* ``submitCertificate`` with k = 1, 3, 5, 8, 16 registered, active signers in ascending
  address order, and the marginal gas per additional signer (least-squares slope over k).
  Each signer costs at least one ``ecrecover`` (3,000 gas, the precompile's fixed price),
  65 bytes of calldata and the registry's ``isActive`` lookup (a cold SLOAD, 2,100).
* ``submitBatchCertificate`` (k = 3) over batches of 1, 8 and 64 results, divided by the batch
  size: the certificate's cost amortised per task. Members are certified on-chain only when
  needed, by ``proveBatchMember``; its cost per member is shown beside.

Reference points (published figures, not measured here): the ecrecover precompile's 3,000 gas
(Ethereum yellow paper / EIP-2929 schedule) and a BLS aggregate-signature check as done by
EigenLayer's BLSSignatureChecker, roughly 113,000 gas (two pairings on BN254 through the
EIP-197 precompile, 45,000 + 2 x 34,000, plus aggregation). Targets: at most 6,000 gas per
additional signer; at most 5,000 gas per task for a batch of 64.

The scenario code (deploy, register satellites, sign EIP-712 results) is the tests' own,
``tests/contracts_chain.py``, so the benchmark runs exactly what the tests check.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Row, Target, as_json, benchmark_parser, environment, render

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from contracts_chain import DevChain, Scenario, anvil_web3, ethtester_web3  # noqa: E402

ECRECOVER_GAS = 3_000
"""The ecrecover precompile's price (address 0x01)."""
BLS_AGGREGATE_CHECK_GAS = 113_000
"""About what EigenLayer's BLSSignatureChecker pays for one aggregate check (2 pairings)."""
PER_SIGNER_TARGET = 6_000
PER_TASK_TARGET = 5_000


@dataclass(frozen=True)
class Ceiling(Target):
    """A target met when ours is at most ``minimum`` (lower is better)."""

    def text(self, unit: str) -> str:
        return f"<= {self.minimum:,.0f} {unit}"


@dataclass(frozen=True)
class GasRow(Row):
    """A row in gas: lower is better."""

    @property
    def higher_is_better(self) -> bool:
        return False


@dataclass(frozen=True)
class Sizes:
    signers: tuple[int, ...]
    batches: tuple[int, ...]
    batch_signers: int = 3


FULL = Sizes(signers=(1, 3, 5, 8, 16), batches=(1, 8, 64))
QUICK = Sizes(signers=(1, 3, 5), batches=(1, 8))


def certificate_gas(sc: Scenario, k: int) -> int:
    """gasUsed of one ``submitCertificate`` with the ``k`` lowest signers, quorum ``k``."""
    task = sc.post_task(quorum=k)
    receipt = sc.send(sc.certify(sc.result(task), sc.satellites[:k]))
    return int(receipt["gasUsed"])


def batch_gas(sc: Scenario, size: int, k: int) -> tuple[int, int]:
    """(gasUsed of ``submitBatchCertificate`` over ``size`` results signed by ``k``, mean
    gasUsed of ``proveBatchMember`` per member)."""
    epoch = 1000 + size
    results = [sc.result(sc.post_task(quorum=k), epoch=epoch) for _ in range(size)]
    _, call = sc.batch(results, sc.satellites[:k], epoch=epoch)
    certificate = int(sc.send(call)["gasUsed"])
    members = [int(sc.send(sc.prove_member(results, i))["gasUsed"]) for i in range(size)]
    return certificate, round(sum(members) / size)


def slope(xs: Sequence[int], ys: Sequence[int]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs)


def measure(chain: DevChain, sizes: Sizes) -> tuple[list[Row], dict[str, Any]]:
    sc = Scenario(chain, satellites=max(*sizes.signers, sizes.batch_signers))
    rows: list[Row] = []
    per_k = {k: certificate_gas(sc, k) for k in sizes.signers}
    for k, gas in per_k.items():
        rows.append(GasRow(f"submitCertificate k={k}", "gas", gas, BLS_AGGREGATE_CHECK_GAS))
    marginal = slope(list(per_k), list(per_k.values()))
    rows.append(GasRow("per additional signer (slope)", "gas", marginal, ECRECOVER_GAS,
                       Ceiling("ours", PER_SIGNER_TARGET)))
    per_batch = {size: batch_gas(sc, size, sizes.batch_signers) for size in sizes.batches}
    for size, (certificate, _member) in per_batch.items():
        target = Ceiling("ours", PER_TASK_TARGET) if size == 64 else None
        rows.append(GasRow(f"batch of {size} (k={sizes.batch_signers}): certificate per task",
                           "gas", certificate / size, per_k.get(sizes.batch_signers), target))
    for size, (_certificate, member) in per_batch.items():
        rows.append(GasRow(f"batch of {size}: proveBatchMember per member", "gas", member))
    raw = {"certificate": per_k, "marginal_per_signer": marginal,
           "batch": {size: {"certificate": c, "member_mean": m}
                     for size, (c, m) in per_batch.items()}}
    return rows, raw


def open_chain(kind: str) -> tuple[DevChain, Any]:
    """(chain, anvil process or None) for ``kind`` in auto / anvil / eth-tester."""
    if kind in ("auto", "anvil"):
        from node.devnet import AnvilNotFoundError, start_anvil

        try:
            node = start_anvil()
        except AnvilNotFoundError:
            if kind == "anvil":
                raise
        else:
            return anvil_web3(node), node
    return ethtester_web3(), None


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("benchmarks.gas", __doc__)
    parser.add_argument("--chain", choices=("auto", "anvil", "eth-tester"), default="auto",
                        help="where to measure (default: anvil if installed, else eth-tester)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    chain, node = open_chain(args.chain)
    try:
        rows, raw = measure(chain, sizes)
    finally:
        if node is not None:
            node.stop()
    notes = [
        f"measured on {chain.name} (Prague): gasUsed of real transactions, 21,000 intrinsic "
        "and calldata included",
        f"baseline of the certificate rows: a BLS aggregate check, ~{BLS_AGGREGATE_CHECK_GAS:,} "
        "gas (EigenLayer BLSSignatureChecker; published, not measured); of the slope row: the "
        f"ecrecover precompile, {ECRECOVER_GAS:,} gas; of the batch rows: one certificate "
        f"with k={sizes.batch_signers}",
        "a batch member is certified on-chain only when needed (proveBatchMember), so the "
        "per-member rows are not part of the amortised certificate cost",
    ]
    failed = [row for row in rows if row.passed is False]
    if args.json:
        print(json.dumps(as_json(rows, chain=chain.name, sizes={"signers": sizes.signers,
                                                                "batches": sizes.batches},
                                 raw=raw, environment=environment(None)), indent=2))
    else:
        print(render(rows, notes))
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
