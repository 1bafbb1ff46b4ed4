"""The attestation service: gossip in, certificates out (DESIGN.md, data flow 4).

:class:`AttestationService` is what a satellite runs on top of its :class:`GossipNode`: every
delivered attestation (already validated by the topic validator, deduplicated and stored) is
decoded, checked for equivocation (:class:`~node.attest.equivocation.EquivocationDetector`,
when given), counted toward its task's certificate, and handed to the node's
:class:`~node.attest.cosigner.Cosigner`, which re-executes the task when it holds the input and
co-signs on a match; our own attestation is published back to the topic. A restarted service
starts from what the gossip store already holds, so certificates survive restarts; that replay
reads the store page by page (:data:`REPLAY_PAGE` messages at a time, off the event loop), not
in one query into memory.

Bounded memory (issue #17 item 6): the per-task map :attr:`AttestationService.attestations`
forgets a task once it is certified on chain (:meth:`AttestationService.forget`, called by the
mission when it sees ``TaskCertified``; the cosigner forgets its input and result too; later
attestations for it are ignored, the newest :data:`FINISHED_REMEMBERED` such ids are kept),
when no attestation arrived for it for ``task_ttl`` seconds (expired), and the least recently
active tasks beyond ``max_tasks``;
:attr:`~AttestationService.considered` and :attr:`~AttestationService.evidence` keep the newest
:data:`HISTORY` entries (evidence is durable in the detector's own store). Evictions are
counted in :attr:`AttestationService.evicted`.

Our attestations go out through a :class:`~node.gossip.bundle.BundlePublisher`: those made
within 0.1 s of each other share one gossip message (a lone one travels as itself), and the
good attestations of a bundle our validator rejected for a bad entry are published again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict, deque

from node.attest.attestation import SignedAttestation, as_address
from node.attest.certificate import Certificate, CertificateBuilder, TaskTerms
from node.attest.codec import decode, encode
from node.attest.cosigner import Consideration, Cosigner
from node.attest.equivocation import EquivocationDetector, Evidence
from node.gossip.bundle import BundlePublisher
from node.gossip.host import GossipNode
from node.tasks.task import Task as RunnableTask

log = logging.getLogger(__name__)

REPLAY_PAGE = 1024
"""Messages read from the store per query when the service starts."""
HISTORY = 1024
"""Newest entries kept in ``considered`` and ``evidence``."""
FINISHED_REMEMBERED = 100_000
"""Newest certified task ids remembered (their late attestations are ignored)."""


class AttestationService:
    """Consumes one gossip node's deliveries for the TaskAttestations domain
    ``(chain_id, contract)``; see the module docstring. Use as an async context manager (or
    :meth:`start` / :meth:`stop`)."""

    def __init__(self, gossip: GossipNode, chain_id: int, contract: bytes | str, *,
                 cosigner: Cosigner | None = None,
                 detector: EquivocationDetector | None = None,
                 task_ttl: float = 7 * 24 * 3600.0, max_tasks: int = 100_000) -> None:
        self.gossip = gossip
        self.chain_id = chain_id
        self.contract = as_address(contract)
        if cosigner is not None and (cosigner.chain_id, cosigner.contract) != (
                self.chain_id, self.contract):
            raise ValueError("the cosigner signs for another TaskAttestations domain")
        self.cosigner = cosigner
        self.detector = detector
        self.task_ttl = task_ttl
        self.max_tasks = max_tasks
        self.attestations: dict[bytes, list[SignedAttestation]] = {}
        """Every attestation delivered, by task id, in delivery order (open tasks only)."""
        self._active: OrderedDict[bytes, float] = OrderedDict()  # task id -> last seen
        self._finished: OrderedDict[bytes, None] = OrderedDict()  # certified task ids
        self.evicted: Counter[str] = Counter()
        """Tasks forgotten, by reason: ``certified``, ``expired``, ``full``."""
        self.considered: deque[Consideration] = deque(maxlen=HISTORY)
        """What the cosigner did with peers' attestations it re-executed (newest)."""
        self.evidence: deque[Evidence] = deque(maxlen=HISTORY)
        self._changed = asyncio.Condition()
        self._inbox = gossip.subscribe()
        self._task: asyncio.Task[None] | None = None
        check = gossip.validator.attestations if gossip.validator is not None else None
        self.publisher = BundlePublisher(gossip, check)
        self._bundles: asyncio.Task[None] | None = None

    async def start(self) -> AttestationService:
        """Replay what the gossip store holds (after a restart: our own attestations mark
        their tasks as signed, peers' ones not yet co-signed are considered now), then
        consume new deliveries."""
        self._bundles = asyncio.create_task(self.publisher.run(), name="attestation-bundles")
        if self.gossip.validator is not None:
            self.gossip.validator.on_salvage = self.publisher.submit_threadsafe
        seq = 0
        while rows := await asyncio.to_thread(self.gossip.store.since, seq, REPLAY_PAGE):
            seq = rows[-1][0]
            page = [decode(data) for _, data in rows]
            if self.cosigner is not None:
                for att in page:
                    if att.signer == self._our_address():
                        self.cosigner.signed.setdefault(att.result.task_id, att.result)
            for att in page:
                await self._handle(att)
        self._task = asyncio.create_task(self._consume(), name="attestation-service")
        return self

    async def stop(self) -> None:
        for task in (self._task, self._bundles):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._bundles = None
        with contextlib.suppress(ValueError):  # stopped twice
            self.gossip.unsubscribe(self._inbox)

    async def __aenter__(self) -> AttestationService:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run_task(self, task: RunnableTask, epoch: int) -> SignedAttestation:
        """Run ``task`` here, sign the result and gossip it (the originating satellite)."""
        if self.cosigner is None:
            raise RuntimeError("this node has no cosigner (no signer or model) to run tasks")
        att = await asyncio.to_thread(self.cosigner.run, task, epoch)
        await self.publisher.publish(encode(att))
        return att

    def forget(self, task_id: bytes) -> None:
        """``task_id`` is certified (on chain): drop its attestations, and the cosigner's input
        and result for it, and ignore later ones."""
        task_id = bytes(task_id)
        if self.cosigner is not None:
            self.cosigner.forget(task_id)
        self._finished[task_id] = None
        self._finished.move_to_end(task_id)
        while len(self._finished) > FINISHED_REMEMBERED:
            self._finished.popitem(last=False)
        if self.attestations.pop(task_id, None) is not None:
            self._active.pop(task_id, None)
            self.evicted["certified"] += 1

    def _touch(self, task_id: bytes) -> None:
        """``task_id`` got an attestation now; evict expired and least recent tasks."""
        now = time.monotonic()
        self._active[task_id] = now
        self._active.move_to_end(task_id)
        while self._active:
            oldest, seen = next(iter(self._active.items()))
            if now - seen > self.task_ttl:
                reason = "expired"
            elif len(self._active) > self.max_tasks:
                reason = "full"
            else:
                break
            del self._active[oldest]
            self.attestations.pop(oldest, None)
            self.evicted[reason] += 1

    def builder(self, task: TaskTerms) -> CertificateBuilder:
        """A certificate builder holding every attestation delivered so far for ``task``."""
        builder = CertificateBuilder(task, self.chain_id, self.contract)
        for att in self.attestations.get(task.task_id, ()):
            builder.add(att)
        return builder

    async def certificate(self, task: TaskTerms, output_hash: bytes | None = None
                          ) -> Certificate:
        """Wait until ``task.quorum`` signers attested one result (with ``output_hash``, or
        any output) and return its certificate (signers ascending, as the contract wants)."""
        async with self._changed:
            while True:
                builder = self.builder(task)
                ready = builder.ready_outputs()
                if output_hash is not None:
                    ready = [out for out in ready if out == output_hash]
                if ready:
                    return builder.certificate(ready[0])
                await self._changed.wait()

    def _our_address(self) -> bytes | None:
        return None if self.cosigner is None else bytes(self.cosigner.signer.address)

    async def _consume(self) -> None:
        while True:
            data = await self._inbox.get()
            try:
                await self._handle(decode(data))
            except Exception:  # one bad message must not stop the service
                log.exception("attestation service failed on a message")

    async def _handle(self, att: SignedAttestation) -> None:
        if self.detector is not None:
            found = await asyncio.to_thread(self.detector.observe, att)
            if found is not None:
                log.warning("equivocation by 0x%s on task 0x%s", found.signer.hex(),
                            found.task_id.hex())
                self.evidence.append(found)
        task_id = att.result.task_id
        if task_id in self._finished:
            return  # certified already
        async with self._changed:
            self.attestations.setdefault(task_id, []).append(att)
            self._touch(task_id)
            self._changed.notify_all()
        if self.cosigner is None or att.signer == self._our_address():
            return
        outcome = await asyncio.to_thread(self.cosigner.consider, att)
        if outcome.attestation is None:
            return
        self.considered.append(outcome)
        if not outcome.agreed:
            log.warning("task 0x%s: %s", att.result.task_id.hex(), outcome.reason)
        await self.publisher.publish(encode(outcome.attestation))
