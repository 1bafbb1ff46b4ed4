"""Attestation bundles: many attestations in one gossip message (issue #17 item 7).

py-libp2p spends ~10 ms of CPU per gossip message per node whatever its size (DESIGN.md,
"facts learnt the hard way"), so one attestation per message caps 10 node processes on 2
cores near 10 attestations/s. A bundle carries up to :data:`MAX_ENTRIES` attestations in one
message and shares that cost; each attestation inside is still validated, stored, deduplicated
and delivered on its own.

Wire format, the one encoding of a bundle (big-endian, no padding)::

    offset       size  field
         0          1  tag (0xB1: bundle, version 1)
         1          2  count n (uint16, 2 <= n <= MAX_ENTRIES)
         3    250 * n  n version-1 attestations (node.attest.codec), all different
    3 + 250 n          end

A single attestation is never bundled: it travels as its own 250-byte message (first byte
0x01), the form js-libp2p peers and older nodes exchange, so ``count >= 2`` keeps one wire
form per content. :func:`decode_bundle` is strict: another tag, a length that is not exactly
``3 + 250 n``, a count out of range, an entry that does not decode or a repeated entry raise
:class:`BundleError` (a :class:`~node.attest.codec.DecodeError`). It checks no signature: that
is the validator's job, entry by entry.

Authenticity of the bundle as a whole is gossipsub's: every message is signed by its
publisher's libp2p key (``strict_signing``); every attestation in it carries its own EIP-712
signature, checked like a lone one.

**Validation** (:class:`GossipValidator`, the topic validator): a lone attestation gets the
:class:`~node.gossip.validator.AttestationValidator`'s verdict; a bundle is accepted --
delivered and forwarded whole -- only if it decodes and *every* entry is accepted. A bundle with
an invalid entry is rejected (not forwarded; gossipsub counts it against the peer that sent
it, P4 in :mod:`node.gossip.scoring`), and its accepted entries are handed to ``on_salvage``:
the node publishes them again in a bundle of its own (:meth:`BundlePublisher.submit_threadsafe`),
so a bad entry never makes good ones lost and is never stored or forwarded itself. A bundle
with no invalid entry but one the validator cannot decide on now is *ignored* as a whole
(:attr:`~node.gossip.validator.Verdict.IGNORE`: not held against the sender, decided again
when it comes back; catch-up fetches its attestations one by one from the peers' stores).

**Delivery** splits an accepted bundle back into its attestations (:func:`attestations_in`)
before the store: the store, the sync protocol and the application only ever see single
attestations, deduplicated by ``sha256(attestation)`` whichever bundle (or none) carried them.

**Publishing** (:class:`BundlePublisher`): attestations handed to :meth:`BundlePublisher.publish`
wait at most ``window`` seconds for company, then go out as one bundle (a lone one as itself);
while a bundle is being published (paced and backpressured by the node) the next one fills up,
so under load bundles grow towards :data:`MAX_ENTRIES` and the message rate stays low.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from node.attest import codec
from node.attest.codec import DecodeError, message_id
from node.gossip.config import UndecidedError
from node.gossip.validator import Validator, Verdict, verdict_of

log = logging.getLogger(__name__)

TAG = 0xB1
MAX_ENTRIES = 200
_HEADER = struct.Struct(">BH")  # tag, count
ENTRY = codec.LENGTH
MAX_BYTES = _HEADER.size + MAX_ENTRIES * ENTRY


class BundleError(DecodeError):
    """Bytes that are not a well-formed version-1 bundle, or entries that cannot be bundled."""


def is_bundle(data: bytes) -> bool:
    """True if ``data`` claims to be a bundle (its tag); :func:`decode_bundle` decides."""
    return len(data) > 0 and data[0] == TAG


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """The wire form of 2 to :data:`MAX_ENTRIES` distinct encoded attestations."""
    entries = [bytes(e) for e in entries]
    if not 2 <= len(entries) <= MAX_ENTRIES:
        raise BundleError(f"a bundle holds 2 to {MAX_ENTRIES} attestations, not {len(entries)}")
    for entry in entries:
        codec.decode(entry)  # raises DecodeError
    if len(set(entries)) != len(entries):
        raise BundleError("a bundle cannot hold the same attestation twice")
    return _HEADER.pack(TAG, len(entries)) + b"".join(entries)


def decode_bundle(data: bytes) -> list[bytes]:
    """The encoded attestations of a bundle, in order; anything else raises
    :class:`BundleError`. Entries decode as attestations; signatures are not checked."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BundleError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise BundleError(f"bundle of {len(data)} bytes is shorter than its header")
    tag, count = _HEADER.unpack_from(data)
    if tag != TAG:
        raise BundleError(f"not a bundle (tag 0x{tag:02x}, expected 0x{TAG:02x})")
    if not 2 <= count <= MAX_ENTRIES:
        raise BundleError(f"bundle count {count} outside 2..{MAX_ENTRIES}")
    if len(data) != _HEADER.size + count * ENTRY:
        raise BundleError(f"bundle of {count} entries is {len(data)} bytes, expected "
                          f"{_HEADER.size + count * ENTRY}")
    entries = [data[i:i + ENTRY] for i in range(_HEADER.size, len(data), ENTRY)]
    for k, entry in enumerate(entries):
        try:
            codec.decode(entry)
        except DecodeError as exc:
            raise BundleError(f"bundle entry {k}: {exc}") from None
    if len(set(entries)) != count:
        raise BundleError("bundle holds the same attestation twice")
    return entries


def attestations_in(data: bytes) -> list[bytes]:
    """What delivery stores for an accepted message: a bundle's entries, else the message
    itself (also a malformed bundle, which only a node without a validator accepts)."""
    if is_bundle(data):
        with contextlib.suppress(BundleError):
            return decode_bundle(data)
    return [bytes(data)]


class GossipValidator:
    """The topic validator for lone attestations and bundles (see the module docstring).

    ``attestations`` checks one encoded attestation (an
    :class:`~node.gossip.validator.AttestationValidator`, which counts its verdicts by reason);
    ``on_salvage`` receives the accepted entries of a rejected bundle (called on whatever
    thread validates: py-libp2p's trio thread or the asyncio loop)."""

    def __init__(self, attestations: Validator,
                 on_salvage: Callable[[list[bytes]], None] | None = None) -> None:
        self.attestations = attestations
        self.on_salvage = on_salvage
        self.bundles: Counter[str] = Counter()
        """Bundle verdicts: ``accepted``, ``malformed``, ``bad_entry`` (rejected, some entry
        invalid), ``undecided`` (ignored for now), ``salvaged`` (accepted entries of rejected
        bundles handed on)."""
        self._lock = threading.Lock()

    def check(self, data: bytes) -> Verdict:
        if not is_bundle(data):
            return verdict_of(self.attestations, data)
        try:
            entries = decode_bundle(data)
        except BundleError:
            self._count("malformed")
            return Verdict.REJECT
        verdicts = [verdict_of(self.attestations, entry) for entry in entries]
        good = [e for e, v in zip(entries, verdicts, strict=True) if v is Verdict.ACCEPT]
        if len(good) == len(entries):
            self._count("accepted")
            return Verdict.ACCEPT
        if Verdict.REJECT not in verdicts:
            self._count("undecided")
            return Verdict.IGNORE
        self._count("bad_entry")
        if good and self.on_salvage is not None:
            self._count("salvaged", len(good))
            self.on_salvage(good)
        return Verdict.REJECT

    __call__ = check

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.bundles[what] += n

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.bundles)


@dataclass(frozen=True)
class BundleConfig:
    """How :class:`BundlePublisher` groups attestations."""

    window: float = 0.1            # seconds the first attestation waits for others
    max_entries: int = MAX_ENTRIES  # per bundle

    def __post_init__(self) -> None:
        if not 2 <= self.max_entries <= MAX_ENTRIES:
            raise ValueError(f"max_entries must be 2..{MAX_ENTRIES}")
        if self.window < 0:
            raise ValueError("window must be >= 0")


class BundlePublisher:
    """Publishes attestations through ``node`` (a :class:`~node.gossip.host.GossipNode`) in
    bundles. Its owner runs :meth:`run` (in a ``TaskGroup``, or as the task it stops) from
    before the first :meth:`publish` to the end; :meth:`publish` from any task.

    ``check`` (the node's attestation validator) is applied to each attestation as it is handed
    in, so a caller whose attestation is invalid gets its :class:`BundleError` (or
    :class:`~node.gossip.config.UndecidedError`) and the others' bundle is unaffected."""

    def __init__(self, node: Any, check: Validator | None,
                 config: BundleConfig | None = None) -> None:
        self.node = node
        self.check = check
        self.config = config or BundleConfig()
        self.sizes: Counter[int] = Counter()
        """Published messages by number of attestations (1: a lone attestation)."""
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[bytes] | None]] = \
            asyncio.Queue()

    async def publish(self, attestation: bytes) -> bytes:
        """Hand ``attestation`` (an encoded one) to the next bundle; return its message id
        (``sha256``, what delivery reports) once the bundle carrying it was published."""
        if self._closed:
            raise BundleError("the bundle publisher has stopped")
        data = bytes(attestation)
        codec.decode(data)  # raises DecodeError: bundles are not nested
        verdict = verdict_of(self.check, data)
        if verdict is Verdict.REJECT:
            raise BundleError("refusing to publish an attestation our own validator rejects")
        if verdict is Verdict.IGNORE:
            raise UndecidedError("our own validator cannot decide on this attestation now; "
                                 "publish it again later")
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self._queue.put_nowait((data, fut))
        return await fut

    def submit_threadsafe(self, attestations: Iterable[bytes]) -> None:
        """Queue already-validated attestations (a rejected bundle's good entries) for the
        next bundle, from any thread; nobody waits for them. Those the node has already
        stored are skipped (a peer replaying known attestations beside a forgery gets
        nothing re-published)."""
        items = [bytes(a) for a in attestations]
        with contextlib.suppress(RuntimeError):  # the loop is closed: the node is stopping
            self._loop.call_soon_threadsafe(self._enqueue, items)

    def _enqueue(self, items: list[bytes]) -> None:
        for data in items:
            if not self.node.store.contains(message_id(data)):
                self._queue.put_nowait((data, None))

    async def run(self) -> None:
        """Form and publish bundles until cancelled (then fail whatever still waits)."""
        cfg = self.config
        batch: list[tuple[bytes, asyncio.Future[bytes] | None]] = []
        try:
            while True:
                batch = [await self._queue.get()]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(cfg.window):
                        while len(batch) < cfg.max_entries:
                            batch.append(await self._queue.get())
                await self._publish(batch)
                batch = []
        finally:
            self._closed = True
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._fail(batch, BundleError("bundle publisher stopped"))

    async def _publish(self, batch: list[tuple[bytes, asyncio.Future[bytes] | None]]) -> None:
        unique = list(dict.fromkeys(data for data, _ in batch))  # same bytes twice: once
        try:
            data = unique[0] if len(unique) == 1 else encode_bundle(unique)
            await self.node.publish(data)
        except Exception as exc:
            log.warning("publishing a bundle of %d failed: %r", len(unique), exc)
            self._fail(batch, exc)
            return
        self.sizes[len(unique)] += 1
        for entry, fut in batch:
            if fut is not None and not fut.done():
                fut.set_result(message_id(entry))

    @staticmethod
    def _fail(batch: list[tuple[bytes, asyncio.Future[bytes] | None]],
              exc: BaseException) -> None:
        for _, fut in batch:
            if fut is not None and not fut.done():
                fut.set_exception(exc)
