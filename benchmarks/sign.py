"""How fast the wallet signs through the HSM, against the token's own raw rate.

Run from the repository root::

    python -m benchmarks.sign            # full run (about half a minute)
    python -m benchmarks.sign --quick    # small sizes, for the smoke test
    python -m benchmarks.sign --check    # exit 1 if a target is missed
    python -m benchmarks.sign --json     # results as JSON instead of the table

The token is a throwaway SoftHSM2 token in a temporary directory (``SOFTHSM2_CONF`` is set
before the module loads), used through p11-kit-proxy like in production; one secp256k1
key is generated in it. Every figure is the best of several runs (``time.perf_counter``;
the JSON also has the median run), and the measurements take turns (a, b, c, a, b, c, ...)
so that a burst of load on the machine hits all of them. The process is *not* pinned to one
core: the two-thread rows need two.

* **Ours**: what the wallet releases -- the per-signature policy hook
  (:data:`POLICY_HOOK`, see below), then :meth:`Pkcs11Signer.sign_digest`: ``CKM_ECDSA`` in
  the token, low-s normalisation, recovery id, and the check that the signature recovers the
  key's address (:func:`~wallet.keys.signer.finalize_signature`).
* **Raw token rate** (baseline): python-pkcs11 ``key.sign(digest, mechanism=CKM_ECDSA)`` on
  the same key, same token, same sessions layout (one session per thread), nothing else.
  Target (the issue): ours >= 80 % of it on one thread.
* **Two threads**: the same work split over two threads of a persistent pool, each with its
  own session. Target: ours on two threads >= 1.8x ours on one.
* **Software signing** (named baseline): eth-account ``Account.unsafe_sign_hash`` with the
  private key in memory (eth-keys over libsecp256k1), and our
  :class:`~wallet.keys.keystore.KeystoreSigner` (coincurve + the same finalize step).
* **Latency from asyncio**: one request at a time, ``await AsyncSigner.sign_digest``, each
  timed; p50 and p99 against the same calls made synchronously (the cost of the executor hop).

**Policy.** "Policy-checked" signatures pass the policy engine (``wallet.policy``) before the
token. The engine is not wired here yet: :func:`policy_hook` returns the per-signature check
to time (a no-op until then) and the note under the table says which it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from pkcs11 import Mechanism

from benchmarks.common import (
    Row,
    Target,
    as_json,
    benchmark_parser,
    environment,
    interleaved,
    measured,
    render,
)
from wallet.keys import pkcs11 as hsm
from wallet.keys.keystore import KeystoreSigner, create_keystore
from wallet.keys.pin import PinAttempts
from wallet.keys.pool import AsyncSigner
from wallet.keys.signer import finalize_signature, recover_address
from wallet.policy import SigningRequest, parse_policy

PolicyCheck = Callable[[bytes], None]


def no_policy(digest: bytes) -> None:
    """The policy hook until the policy engine is wired: does nothing."""


class _NoHistory:
    """A ledger with nothing spent and nothing pending (the policy only reads it)."""

    def spent_since(self, sender: bytes, since: float) -> int:
        return 0

    def pending(self, request_id: bytes) -> None:
        return None


def policy_hook() -> tuple[PolicyCheck, str]:
    """The per-signature policy check to time, and a note saying what it is: the example
    policy (``configs/policy.example.toml``, every rule) judging a 0.1 ether EIP-1559
    transfer to its treasury for the digest about to be signed; a refusal raises."""
    data = (Path(__file__).resolve().parents[1] / "configs" / "policy.example.toml").read_bytes()
    policy = parse_policy(data, "configs/policy.example.toml")
    history = _NoHistory()
    treasury = bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8")

    def check(digest: bytes) -> None:
        request = SigningRequest.transaction(
            sender=bytes(20), chain_id=policy.chain_id, to=treasury, value=10**17, gas=21000,
            tx_type=2, nonce=0, max_fee_per_gas=20 * 10**9, max_priority_fee_per_gas=10**9,
            digest=digest)
        policy.evaluate(request, now=time.time(), ledger=history).require_allowed()

    return check, ("ours = wallet.policy evaluation of a 0.1 ether EIP-1559 transfer under "
                   "configs/policy.example.toml, then the HSM signature")


POLICY_HOOK: PolicyCheck = no_policy
"""The check run before every signature of the "ours" rows (set by :func:`main`)."""

OURS_VS_RAW = Target("ratio", 0.8)
TWO_THREADS = Target("ratio", 1.8)
TOKEN_LABEL = "orbital-bench"
SO_PIN = "bench-so-pin"
USER_PIN = "bench-user-pin"


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    signatures: int = 2_000  # per run (split over the threads in the two-thread rows)
    software: int = 2_000  # eth-account / keystore signatures per run
    latency: int = 2_000  # sequential requests from asyncio
    repeats: int = 5


QUICK = Sizes(signatures=200, software=200, latency=200, repeats=2)


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Bench:
    """A throwaway SoftHSM2 token with one key, and everything that signs with it."""

    def __init__(self, directory: Path) -> None:
        tokens = directory / "tokens"
        tokens.mkdir()
        conf = directory / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                        "log.level = ERROR\nslots.removable = false\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module is loaded
        attempts = PinAttempts(directory / "pins.sqlite")
        hsm.init_token(None, TOKEN_LABEL, SO_PIN, USER_PIN, attempts=attempts)
        self.address = hsm.generate_key(TOKEN_LABEL, USER_PIN, attempts=attempts)
        self.signer = hsm.Pkcs11Signer(TOKEN_LABEL, self.address, USER_PIN, attempts=attempts)
        self.lib = hsm.load_module()
        self.thread_safe = hsm.is_thread_safe(self.lib)
        self._raw = threading.local()
        self._raw_sessions: list[Any] = []
        self._raw_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench")

    def raw_key(self) -> Any:
        """This thread's python-pkcs11 handle on the private key, in its own session (the
        process is logged in through :attr:`signer`)."""
        key = getattr(self._raw, "key", None)
        if key is None:
            session = self.lib.get_token(token_label=TOKEN_LABEL).open()
            with self._raw_lock:
                self._raw_sessions.append(session)
            key = self._raw.key = hsm.private_key_of(session, self.address)
        return key

    def raw(self, digests: Sequence[bytes]) -> None:
        key = self.raw_key()
        for digest in digests:
            key.sign(digest, mechanism=Mechanism.ECDSA)

    def ours(self, digests: Sequence[bytes]) -> None:
        check, sign = POLICY_HOOK, self.signer.sign_digest
        for digest in digests:
            check(digest)
            sign(digest)

    def on_two_threads(self, work: Callable[[Sequence[bytes]], None],
                       digests: Sequence[bytes]) -> Callable[[], None]:
        half = len(digests) // 2
        parts = (digests[:half], digests[half:])

        def run() -> None:
            for future in wait([self.pool.submit(work, part) for part in parts]).done:
                future.result()
        return run

    def warm_up(self) -> None:
        """Open every thread's sessions before timing, and check each path's output."""
        digest = bytes(range(32))
        raw = bytes(self.raw_key().sign(digest, mechanism=Mechanism.ECDSA))
        finalize_signature(digest, int.from_bytes(raw[:32], "big"),
                           int.from_bytes(raw[32:], "big"), self.address)  # raw is valid
        assert recover_address(digest, self.signer.sign_digest(digest)) == self.address
        barrier = threading.Barrier(2)

        def both() -> None:
            barrier.wait()  # make both pool threads run one
            self.raw([digest])
            self.ours([digest])
        wait([self.pool.submit(both) for _ in range(2)])

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for session in self._raw_sessions:
            session.close()
        self.signer.close()


def software(directory: Path) -> tuple[Callable[[Sequence[bytes]], None],
                                        Callable[[Sequence[bytes]], None]]:
    """eth-account's signing and our keystore signer, on the same in-memory key."""
    secret = random.Random(5).randbytes(32)
    path = directory / "keystore.json"
    create_keystore(path, "bench-password", private_key=secret, kdf="pbkdf2", iterations=2)
    keystore = KeystoreSigner(path, "bench-password")
    digest = bytes(32)
    theirs = Account.unsafe_sign_hash(digest, secret)
    assert keystore.sign_digest(digest).to_bytes() == bytes(theirs.signature)

    def eth_account(digests: Sequence[bytes]) -> None:
        for digest in digests:
            Account.unsafe_sign_hash(digest, secret)

    def ours(digests: Sequence[bytes]) -> None:
        for digest in digests:
            keystore.sign_digest(digest)

    return eth_account, ours


def latency_rows(bench: Bench, sizes: Sizes, digests: Sequence[bytes]) -> list[Row]:
    work = list(digests[:sizes.latency])

    async def from_asyncio() -> list[float]:
        seconds = []
        async with AsyncSigner(bench.signer, threads=2) as signer:
            await signer.sign_digest(work[0])  # warm the worker's session
            for digest in work:
                start = time.perf_counter()
                await signer.sign_digest(digest)
                seconds.append(time.perf_counter() - start)
        return seconds

    def direct() -> list[float]:
        seconds = []
        for digest in work:
            start = time.perf_counter()
            bench.signer.sign_digest(digest)
            seconds.append(time.perf_counter() - start)
        return seconds

    best_async: list[float] | None = None
    best_direct: list[float] | None = None
    for _ in range(max(1, sizes.repeats // 2)):
        a, d = asyncio.run(from_asyncio()), direct()
        if best_async is None or _percentile(a, 0.99) < _percentile(best_async, 0.99):
            best_async = a
        if best_direct is None or _percentile(d, 0.99) < _percentile(best_direct, 0.99):
            best_direct = d
    assert best_async is not None and best_direct is not None
    ms = 1000.0
    return [
        Row("AsyncSigner latency p50 (vs direct call)", "ms/sig",
            ms * statistics.median(best_async), ms * statistics.median(best_direct)),
        Row("AsyncSigner latency p99 (vs direct call)", "ms/sig",
            ms * _percentile(best_async, 0.99), ms * _percentile(best_direct, 0.99)),
    ]


def run(sizes: Sizes, say: Callable[[str], None] | None = None) -> list[Row]:
    rng = random.Random(1)
    digests = [rng.randbytes(32) for _ in range(max(sizes.signatures, sizes.software,
                                                    sizes.latency))]
    work, soft = digests[:sizes.signatures], digests[:sizes.software]
    with tempfile.TemporaryDirectory(prefix="orbital-bench-sign-") as tmp:
        directory = Path(tmp)
        bench = Bench(directory)
        try:
            bench.warm_up()
            eth_account, keystore = software(directory)
            if say:
                say(f"signing: {sizes.signatures} signatures per run, {sizes.repeats} runs ...")
            raw1, ours1, raw2, ours2, eth, mine = interleaved([
                lambda: bench.raw(work),
                lambda: bench.ours(work),
                bench.on_two_threads(bench.raw, work),
                bench.on_two_threads(bench.ours, work),
                lambda: eth_account(soft),
                lambda: keystore(soft),
            ], sizes.repeats)
            n = len(work)
            rows = [
                measured("HSM sign, 1 thread: ours vs raw CKM_ECDSA", "sig/s", n, ours1, raw1,
                         OURS_VS_RAW),
                measured("HSM sign, 2 threads: ours vs raw CKM_ECDSA", "sig/s", n, ours2, raw2),
                measured("HSM sign, ours: 2 threads vs 1 thread", "sig/s", n, ours2, ours1,
                         TWO_THREADS),
                measured("HSM sign, raw CKM_ECDSA: 2 threads vs 1", "sig/s", n, raw2, raw1),
                Row("HSM sign, 1 thread: ours vs eth-account software", "sig/s",
                    n / ours1.best, len(soft) / eth.best, None,
                    n / ours1.median, len(soft) / eth.median),
                measured("keystore sign_digest vs eth-account software", "sig/s", len(soft),
                         mine, eth),
            ]
            if say:
                say("latency from asyncio ...")
            rows += latency_rows(bench, sizes, digests)
        finally:
            bench.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    global POLICY_HOOK
    parser = benchmark_parser("benchmarks.sign", __doc__)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    POLICY_HOOK, policy_note = policy_hook()
    say = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    rows = run(sizes, say)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    notes = (
        "token: SoftHSM2 (file object store) through p11-kit-proxy, python-pkcs11; "
        "ours = policy hook + Pkcs11Signer.sign_digest (CKM_ECDSA, low-s, recovery id, "
        "recovery check)",
        policy_note,
        "software: eth-account unsafe_sign_hash and KeystoreSigner hold the key in memory",
        "latency: one request at a time; p50/p99 of the run with the lowest p99",
        "finalize_signature: coincurve recovery, keccak by safe-pysha3 (wallet.hashing)",
        f"not pinned ({cpus} CPUs usable; the two-thread rows need 2); "
        f"{'quick' if args.quick else 'full'} run",
    )
    if args.json:
        print(json.dumps(as_json(rows, sizes=asdict(sizes), statistic="best",
                                 notes=list(notes), **environment(None)), indent=2))
    else:
        print(render(rows, notes))
    failed = [row.capability for row in rows if row.passed is False]
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
