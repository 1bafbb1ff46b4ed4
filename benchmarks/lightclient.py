"""The beacon light client: how long a mainnet update takes to verify, and how many bytes a
satellite needs for a verified head after a blackout.

Run from the repository root::

    python -m benchmarks.lightclient            # full run (about a minute: py_ecc is slow)
    python -m benchmarks.lightclient --quick    # one py_ecc run per kind (smoke test, ~20 s)
    python -m benchmarks.lightclient --check    # exit 1 if a target is missed
    python -m benchmarks.lightclient --json     # results as JSON instead of the table

**Verification time.** Mainnet preset (a 512-member sync committee) on the mainnet network
config, in Electra (period 1500, slot 12,288,000 on): a chain made and signed by
``tests/beacon_sim.py`` (real BLS keys and signatures, real Merkle branches). The store was
bootstrapped in period 1500 and knows period 1501's committee; the timed objects are the
LightClientUpdate of period 1501 (next committee, finality, 461 of 512 signers: ~90 %, as on
mainnet) and a finality update signed in the same period. Timed work, from the SSZ bytes as
they arrive: strict decoding, then ``process_light_client_update`` (or its finality-update
form) on a copy of the store: ``validate_light_client_update`` (execution branches, finality
and next-committee branches, signing domain and root, FastAggregateVerify) and the store's
bookkeeping. Ours is
py-arkworks-bls12381 with the committee's keys decoded once and kept
(:class:`~node.chain.beacon.bls.CommitteeCache`) and the participants' key made as the
branch-authenticated aggregate key minus the 51 absent members; a second row decodes the 512
keys on every update (no cache). Baseline: the same decoding and branch checks (not the
bookkeeping, a few microseconds), the signature
through py_ecc's ``G2ProofOfPossession.FastAggregateVerify`` (the ciphersuite's pure-Python
reference: KeyValidate and a sum of the 461 participants' keys every time). Both sides must
accept the honest objects (py_ecc on every timed run) and refuse a copy with one signer's bit
cleared (py_ecc in the full run only: it costs seconds). A last row isolates the participants'
key: aggregate minus the absent against the sum of the present (both arkworks, keys decoded).

**Bytes for a verified head.** The SSZ sizes of the exact Electra mainnet objects a satellite
downloads (the encodings of the objects above, execution ``extra_data`` at its 32-byte maximum):
after a blackout of 1 h, 24 h or 7 days with its store finalized in period p and the next
committee known, it fetches one LightClientUpdate per sync-committee period boundary the blackout
crossed (each brings the next committee; the store is back in that state afterwards) and one
finality update for the head. A period is 8192 slots (27.3 h), so a blackout of length T crosses
``floor(T / period)`` or ``ceil(T / period)`` boundaries depending on where it falls: both are
shown. The bootstrap is a one-off and shown apart. Baseline: header-by-header sync of the same
span with *execution* headers (one RLP header every 12 s, a Prague header with 32 bytes of
extra data): that is what this node's chain core already verifies (hash links back to a
checkpoint) and what the proofs it serves are checked against. Signed *beacon* block headers
(``SignedBeaconBlockHeader``, 208 bytes a slot) would be a third of that, but checking them
needs every proposer's public key -- the whole validator set, hundreds of megabytes -- so they
are no alternative for a satellite; the notes give their figure as a lower bound.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from py_ecc.bls import G2ProofOfPossession as py_ecc_bls

from benchmarks.common import (
    Row,
    Target,
    as_json,
    benchmark_parser,
    environment,
    interleaved,
    measured,
    pin_to_one_core,
    render,
    timed,
)
from node.chain.beacon import sync_protocol as sp
from node.chain.beacon.bls import CommitteeCache, CommitteeKeys
from node.chain.beacon.config import MAINNET, NetworkConfig
from node.chain.beacon.containers import (
    DOMAIN_SYNC_COMMITTEE,
    FINALIZED_ROOT_GINDEX_ELECTRA,
    NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA,
    BeaconBlockHeader,
    compute_domain,
    compute_signing_root,
)
from node.chain.beacon.ssz import is_valid_normalized_merkle_branch
from node.chain.header import EMPTY_OMMERS_HASH, Header

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from beacon_sim import BeaconChainSim  # noqa: E402

PERIOD = 1500  # an Electra period of mainnet (Electra: period 1422 on, Fulu: 1607 on)
SIGNERS = 461  # of 512: ~90 % participation
SECONDS_PER_SLOT = 12
SLOTS_PER_PERIOD = 8192
HOUR = 3600
SPANS = (("1 h", HOUR), ("24 h", 24 * HOUR), ("7 days", 7 * 24 * HOUR))
SIGNED_BEACON_HEADER_BYTES = 208  # SignedBeaconBlockHeader: 5 * 8/32-byte fields + 96
FASTER_THAN_PY_ECC = Target("ratio", 10.0)


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    repeats: int = 20  # runs of ours (each one update)
    baseline_repeats: int = 3  # runs of py_ecc (each several seconds)
    key_repeats: int = 50  # participants' key computations
    tamper_check: bool = True  # also let py_ecc refuse a tampered update (one more slow run)


QUICK = Sizes(repeats=5, baseline_repeats=1, key_repeats=10, tamper_check=False)


@dataclass(frozen=True)
class SizeRow(Row):
    """A row of bytes: lower is better, so the ratio is baseline / ours."""

    @property
    def higher_is_better(self) -> bool:
        return False


# -- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """The store and the encoded objects a satellite would receive."""

    config: NetworkConfig
    sim: BeaconChainSim
    store: sp.LightClientStore
    current_slot: int
    bootstrap: Any
    update: Any
    finality: Any

    @property
    def update_bytes(self) -> bytes:
        return self.update.encode()

    @property
    def finality_bytes(self) -> bytes:
        return self.finality.encode()


def make_inputs() -> Inputs:
    config = MAINNET
    sim = BeaconChainSim(config, dense=False, start_slot=PERIOD * SLOTS_PER_PERIOD,
                         extra_data=b"\xee" * 32)
    start = sim.period_start(PERIOD)
    bootstrap = sim.bootstrap(start + 100)
    store = sp.initialize_light_client_store(config, sim.root(start + 100), bootstrap)
    first = sim.update(start + 8000, participation=SIGNERS)  # period 1500: learn 1501's
    sp.process_light_client_update(config, store, first, start + 8001)
    assert sp.is_next_sync_committee_known(store)
    nxt = sim.period_start(PERIOD + 1)
    update = sim.update(nxt + 200, participation=SIGNERS)
    finality = sim.finality_update(nxt + 300, participation=SIGNERS)
    for obj in (bootstrap, update, finality):
        assert sim.fork(obj.header.beacon.slot if hasattr(obj, "header")
                        else obj.attested_header.beacon.slot) == "electra"
    return Inputs(config, sim, store, nxt + 301, bootstrap, update, finality)


# -- ours and the baseline -------------------------------------------------------------------


def ours(inputs: Inputs, cls: type, data: bytes, cache: Callable[[], CommitteeCache]) -> None:
    """Decode and process as the light client does, on a copy of the store (the shallow copy
    :class:`~node.chain.beacon.store.LightClient` makes too)."""
    obj = cls.decode(data)
    store = dataclasses.replace(inputs.store)
    process = (sp.process_light_client_update if hasattr(obj, "next_sync_committee")
               else sp.process_light_client_finality_update)
    process(inputs.config, store, obj, inputs.current_slot, cache())


def baseline(inputs: Inputs, cls: type, data: bytes) -> bool:
    """The same decoding and Merkle checks, the signature by py_ecc's FastAggregateVerify over
    the participants' keys (consensus-specs ``validate_light_client_update``, Electra)."""
    config, store = inputs.config, inputs.store
    obj = cls.decode(data)
    attested = obj.attested_header
    if not sp.is_valid_light_client_header(config, attested):
        return False
    if not sp.is_valid_light_client_header(config, obj.finalized_header):
        return False
    state_root = attested.beacon.state_root
    if not is_valid_normalized_merkle_branch(obj.finalized_header.beacon.hash_tree_root(),
                                             obj.finality_branch, FINALIZED_ROOT_GINDEX_ELECTRA,
                                             state_root):
        return False
    if hasattr(obj, "next_sync_committee") and not is_valid_normalized_merkle_branch(
            obj.next_sync_committee.hash_tree_root(), obj.next_sync_committee_branch,
            NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA, state_root):
        return False
    store_period = config.sync_committee_period_at_slot(store.finalized_header.beacon.slot)
    signature_period = config.sync_committee_period_at_slot(obj.signature_slot)
    committee = (store.current_sync_committee if signature_period == store_period
                 else store.next_sync_committee)
    aggregate = obj.sync_aggregate
    keys = [key for key, bit in zip(committee.pubkeys, aggregate.sync_committee_bits,
                                    strict=True) if bit]
    version = config.fork_at_slot(max(obj.signature_slot, 1) - 1).version
    domain = compute_domain(DOMAIN_SYNC_COMMITTEE, version, config.genesis_validators_root)
    root = compute_signing_root(attested.beacon, domain)
    return bool(py_ecc_bls.FastAggregateVerify(keys, root,
                                               aggregate.sync_committee_signature))


def _tampered(obj: Any) -> Any:
    bits = list(obj.sync_aggregate.sync_committee_bits)
    bits[bits.index(True)] = False
    return dataclasses.replace(obj, sync_aggregate=dataclasses.replace(
        obj.sync_aggregate, sync_committee_bits=tuple(bits)))


def cross_check(inputs: Inputs, sizes: Sizes) -> None:
    """Ours accepts the honest objects and refuses a copy with one signer's bit cleared (so
    does py_ecc, in the full run); py_ecc's acceptance of the honest objects is asserted on
    every timed run."""
    for obj in (inputs.update, inputs.finality):
        ours(inputs, type(obj), obj.encode(), CommitteeCache)
        try:
            ours(inputs, type(obj), _tampered(obj).encode(), CommitteeCache)
        except sp.UpdateRejected:
            pass
        else:
            raise AssertionError(f"ours accepted a tampered {type(obj).__name__}")
    if sizes.tamper_check:
        assert not baseline(inputs, type(inputs.update), _tampered(inputs.update).encode()), \
            "py_ecc accepted a tampered update"


def measure_verification(inputs: Inputs, sizes: Sizes,
                         progress: Callable[[str], None] | None) -> list[Row]:
    warm = CommitteeCache()
    rows: list[Row] = []
    for label, obj in (("LightClientUpdate", inputs.update),
                       ("LightClientFinalityUpdate", inputs.finality)):
        cls, data = type(obj), obj.encode()
        ours(inputs, cls, data, lambda: warm)  # warm the committee cache
        cached, cold = interleaved([lambda c=cls, d=data: ours(inputs, c, d, lambda: warm),
                                    lambda c=cls, d=data: ours(inputs, c, d, CommitteeCache)],
                                   sizes.repeats)
        verdicts: list[bool] = []
        theirs = timed(lambda c=cls, d=data, v=verdicts: v.append(baseline(inputs, c, d)),
                       sizes.baseline_repeats)
        assert all(verdicts), f"py_ecc refused the honest {label}"
        unit = "ms/update"
        name = f"{label} ({len(data):,} B, {SIGNERS}/512 signers)"
        rows.append(measured(f"{name}: cached keys", unit, 1, cached, theirs,
                             FASTER_THAN_PY_ECC))
        rows.append(measured(f"{name}: keys decoded each time", unit, 1, cold, theirs))
        if progress:
            progress(f"measured: {label}")
    rows.append(measure_participants_key(inputs, sizes))
    return rows


def measure_participants_key(inputs: Inputs, sizes: Sizes) -> Row:
    committee = inputs.store.next_sync_committee
    keys = CommitteeKeys(committee.pubkeys, committee.aggregate_pubkey)
    bits = inputs.update.sync_aggregate.sync_committee_bits
    present = [point for point, bit in zip(keys.points, bits, strict=True) if bit]

    def summed() -> Any:
        total = present[0]
        for point in present[1:]:
            total = total + point
        return total

    assert keys.participants_key(bits) == summed()
    subtract, add = interleaved([lambda: keys.participants_key(bits), summed],
                                sizes.key_repeats)
    absent = len(bits) - len(present)
    return measured(f"participants' key: aggregate - {absent} absent vs sum of {len(present)}",
                    "ms/key", 1, subtract, add)


# -- bytes -----------------------------------------------------------------------------------


def execution_header_bytes() -> int:
    """RLP size of a mainnet-like Prague execution header with 32 bytes of extra data."""
    header = Header(
        parent_hash=b"\x11" * 32, ommers_hash=EMPTY_OMMERS_HASH, coinbase=b"\x22" * 20,
        state_root=b"\x33" * 32, transactions_root=b"\x44" * 32, receipts_root=b"\x55" * 32,
        logs_bloom=b"\x66" * 256, difficulty=0, number=23_000_000, gas_limit=45_000_000,
        gas_used=20_000_000, timestamp=1_760_000_000, extra_data=b"\x77" * 32,
        mix_hash=b"\x88" * 32, nonce=bytes(8), base_fee_per_gas=1_000_000_000,
        withdrawals_root=b"\x99" * 32, blob_gas_used=786_432, excess_blob_gas=10_000_000,
        parent_beacon_block_root=b"\xaa" * 32, requests_hash=b"\xbb" * 32)
    return len(header.rlp)


def signed_beacon_header_bytes() -> int:
    return len(BeaconBlockHeader.default().encode()) + 96


@dataclass(frozen=True)
class Span:
    name: str
    seconds: int
    boundaries: int  # sync-committee periods crossed
    ours: int  # bytes
    execution_headers: int  # bytes
    beacon_headers: int  # bytes


def spans(inputs: Inputs) -> list[Span]:
    update, finality = len(inputs.update_bytes), len(inputs.finality_bytes)
    header = execution_header_bytes()
    beacon = signed_beacon_header_bytes()
    period = SLOTS_PER_PERIOD * SECONDS_PER_SLOT
    out = []
    for name, seconds in SPANS:
        slots = seconds // SECONDS_PER_SLOT
        for boundaries in sorted({seconds // period, math.ceil(seconds / period)}):
            out.append(Span(name, seconds, boundaries, boundaries * update + finality,
                            slots * header, slots * beacon))
    return out


def size_rows(inputs: Inputs) -> list[Row]:
    rows: list[Row] = [
        SizeRow(f"bootstrap (once, at the checkpoint; {len(inputs.bootstrap.encode()):,} B)",
                "kB", len(inputs.bootstrap.encode()) / 1000),
    ]
    for span in spans(inputs):
        crossed = {0: "no period boundary", 1: "1 period boundary"}.get(
            span.boundaries, f"{span.boundaries} period boundaries")
        rows.append(SizeRow(f"head after {span.name} offline, {crossed} "
                            f"({span.boundaries} upd + 1 fin)", "kB", span.ours / 1000,
                            span.execution_headers / 1000))
    return rows


def run(sizes: Sizes = Sizes(), progress: Callable[[str], None] | None = None
        ) -> tuple[list[Row], Inputs]:
    inputs = make_inputs()
    if progress:
        progress("made a mainnet chain (period 1500-1501, Electra) and its light-client data")
    cross_check(inputs, sizes)
    if progress:
        progress("cross-checked: ours accepts the honest objects and refuses tampered ones"
                 + (" (py_ecc too)" if sizes.tamper_check else ""))
    rows = measure_verification(inputs, sizes, progress)
    rows += size_rows(inputs)
    return rows, inputs


def notes(inputs: Inputs, mode: str, cpu: int | None) -> list[str]:
    header = execution_header_bytes()
    beacon = signed_beacon_header_bytes()
    day = next(s for s in spans(inputs) if s.name == "24 h" and s.boundaries == 1)
    link = 9600 / 8  # bytes per second at 9.6 kbit/s
    return [
        "times: best of several runs on one pinned core, from SSZ bytes (strict decode + "
        "process_light_client_*update on a copy of the store); --json adds the median run",
        "baseline (times): same decoding and branch checks, signature by py_ecc "
        "G2ProofOfPossession.FastAggregateVerify over the participants' keys (KeyValidate + sum "
        "each time); 'keys decoded each time' = ours without the committee-key cache",
        f"sizes: Electra mainnet SSZ encodings, extra_data 32 B: LightClientUpdate "
        f"{len(inputs.update_bytes):,} B, LightClientFinalityUpdate "
        f"{len(inputs.finality_bytes):,} B; one update per period boundary crossed (each brings "
        f"the next committee) + one finality update; a period is 8192 slots = 27.3 h",
        f"baseline (sizes): execution headers, one per 12 s slot, {header} B each (RLP, Prague, "
        f"32 B extra_data), the chain core's hash-linked sync; signed beacon headers would be "
        f"{beacon} B/slot ({day.beacon_headers / 1e6:.2f} MB a day) but need the whole "
        f"validator set to check",
        f"at 9.6 kbit/s a day's blackout costs {day.ours / link:.0f} s of link (ours) against "
        f"{day.execution_headers / link / 60:.0f} min (execution headers)",
        f"ratio = baseline / ours (> 1: ours faster or smaller); pinned to CPU {cpu}; {mode} run",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("benchmarks.lightclient", __doc__)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    cpu = pin_to_one_core()
    say = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    rows, inputs = run(sizes, say)
    mode = "quick" if args.quick else "full"
    if args.json:
        print(json.dumps(as_json(rows, sizes=asdict(sizes), statistic="best",
                                 spans=[asdict(s) for s in spans(inputs)],
                                 **environment(cpu)), indent=2))
    else:
        print(render(rows, notes(inputs, mode, cpu)))
    failed = [row.capability for row in rows if row.passed is False]
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
