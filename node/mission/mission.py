"""The mission loop of one satellite: posted tasks in, certificates on chain out.

:class:`Mission` is what :func:`node.mission.open_mission` builds for ``orbital node run`` when
the config has ``[tasks]`` (with ``[gossip]`` and ``[wallet]``). Its parts:

* after every successful refresh of the node (inside the contact pass,
  :meth:`Mission.after_refresh`): the registry snapshot is re-read and the new anchored blocks
  are scanned for ``TaskPosted``/``TaskCertified`` (:mod:`node.mission.chain`), recorded in
  the mission store before the scan cursor moves;
* the work loop (:meth:`Mission.run`, in the node's task tree): every :data:`POLL` seconds, or
  at once after a refresh, each open task whose input file is in ``[tasks] inputs`` (matched by
  keccak256 = the task's inputHash) is run and its attestation gossiped (peers' matching
  attestations are co-signed by the :class:`~node.gossip.service.AttestationService`); a task
  whose attestations reach its quorum has a certificate;
* who submits: every node that sees a certificate could, but the contract keeps only the first
  and reverts the rest (``AlreadyCertified``: gas spent for nothing). So the certificate's
  signers take turns: the one of rank ``r`` (0 = the lowest address) waits ``submit_delay + r x
  fallback`` after it saw the certificate form; a node that is not a signer ranks last. When its
  turn comes, a node first reads ``certifiedOutput(taskId)`` at the anchored head and submits
  only if the task is still uncertified, so normally exactly one node submits and the others
  step aside when they see it certified; a node that fails to (no contact, killed) is covered
  by the next after ``fallback``. Two submissions can still both be mined when a turn comes
  before the first one is anchored; the second then reverts -- the contract's refusal is the
  safety net, the turns are the economy;
* the submission: a ``submitCertificate`` transaction signed by the wallet's
  :class:`~wallet.onboard.OnboardSigner` (policy, ledger, audit log), recorded durably in the
  mission store, then handed to the node's own ``eth_sendRawTransaction`` (admitted and
  fsynced in the outbox, flushed at this or the next contact, included only on a verified
  receipt). One live submission per task per node, across restarts
  (:mod:`node.mission.store`);
* the neighbours: each ``[gossip] peers`` entry is kept connected
  (:func:`node.mission.peers.keep_peer`).

Nothing here talks to an upstream: reads go through the node's verified methods, and a read
the verified cache cannot answer out of contact waits for the next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.attest.certificate import Certificate, TaskTerms
from node.chain.hashing import keccak256
from node.contact import plan_clock
from node.gossip.config import GossipError
from node.gossip.host import GossipNode
from node.gossip.service import AttestationService
from node.mission.chain import ChainView, RegistrySnapshot
from node.mission.peers import keep_peer
from node.mission.power import OnboardPower
from node.mission.routing import Turn, turns
from node.mission.store import MissionStore, PostedTask
from node.outbox.store import ACTIVE
from node.rpc.server import EXECUTION_REVERTED, RpcError
from node.rpc.upstream_api import UpstreamError
from node.tasks import model as qmodel
from node.tasks.task import Task, TaskError
from sim_link.clock import PlanClock
from sim_link.plan import ContactPlan, plan_from_json
from wallet.errors import WalletError
from wallet.transactions import FEE_MARKET, TransactionRequest

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.rpc.verified_node import VerifiedNode
    from wallet.onboard import OnboardSigner

log = logging.getLogger(__name__)

POLL = 0.5
"""Seconds between two looks at the inputs directory and the certificates."""
RETRY = 5.0
"""Seconds before a submission step that could not finish (no verified state, a refusal) is
tried again."""
REFUSED_RETRY = 300.0
"""Seconds before the wallet is asked again to sign a submission it refused."""
MAX_INPUT_BYTES = 16 << 20
"""Input files larger than this are not read (the model takes 64 bytes per image)."""
LANDED = ("included", "final")


class Mission:
    """See the module docstring."""

    def __init__(self, config: NodeConfig, node: VerifiedNode, onboard: OnboardSigner,
                 model: qmodel.Model, store: MissionStore, registry: RegistrySnapshot,
                 gossip: GossipNode, service: AttestationService,
                 power: OnboardPower | None = None) -> None:
        assert config.tasks is not None and config.gossip is not None
        self.tasks = config.tasks
        self.peers = config.gossip.peers
        self.chain_id = config.chain_id
        self.node = node
        self.chain = ChainView(node)
        self.onboard = onboard
        self.address = bytes(onboard.address)
        self.model = model
        self.store = store
        self.registry = registry
        self.gossip = gossip
        self.service = service
        self.power = power
        # the service's start-up replay put back what the gossip store holds for every task:
        # those already certified on chain are done, as when their TaskCertified is seen
        for task in store.tasks():
            if task.certified is not None:
                service.forget(task.task_id)
        self.plan: ContactPlan | None = None
        self.plan_clock: PlanClock | None = None
        if config.link is not None:  # who submits: the certificate's earliest way down
            self.plan = plan_from_json(config.link.plan.read_bytes())
            self.plan_clock = plan_clock(config.link)
        self.names: dict[bytes, str] = {}  # signer -> registered name (verified reads)
        self._turns: dict[bytes, list[Turn]] = {}  # task id -> submitters' turns
        self._powered: set[bytes] = set()  # task ids whose run's energy is committed
        self._energy_waits: set[bytes] = set()  # task ids told to wait for energy
        self.connected: set[str] = set()
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._formed: dict[bytes, float] = {}  # task id -> loop time its certificate formed
        self._not_before: dict[bytes, float] = {}  # task id -> no submission step before
        self._after_refresh: set[bytes] = set()  # task ids waiting for the next refresh
        self._unpublished: dict[bytes, int | None] = {}  # task id -> registry block then
        self._unrunnable: set[bytes] = set()  # bad input, or the wallet refused: not retried
        self._input_hashes: dict[tuple[str, int, int], bytes] = {}
        self._warned: set[tuple[bytes, str]] = set()

    # -- the node's hooks ----------------------------------------------------------------

    def accounts(self) -> tuple[bytes, ...]:
        """Accounts to prove at every pass (the wallet's: its nonce and balance are then
        answered out of contact too)."""
        return (self.address,)

    async def after_refresh(self) -> None:
        """After a successful refresh, inside the pass: the registry snapshot and the new
        task logs. A failure is logged and shown in ``orbital_status`` (the pass goes on)."""
        self._after_refresh.clear()
        try:
            await self._read_registry()
            await self._scan()
            self.last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("mission: reading the chain failed: %s", exc)
        self._wake.set()

    async def run(self) -> None:
        """The work loop and one dialler per configured peer, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for addr in self.peers:
                group.create_task(keep_peer(self.gossip, addr, self.connected),
                                  name=f"peer-{addr[-12:]}")
            group.create_task(self._work(), name="mission")

    def status(self) -> dict[str, Any]:
        """``orbital_status``'s ``mission`` entry."""
        tasks = self.store.tasks()
        submissions = self.store.submissions()
        outbox = self.node.outbox
        states = [None if outbox is None or (e := outbox.get(s.tx_hash)) is None else e.state
                  for s in submissions]
        listen = self.gossip.listen_addr
        return {
            "address": "0x" + self.address.hex(),
            "peerId": self.gossip.peer_id,
            "listen": [listen if "/p2p/" in listen else f"{listen}/p2p/{self.gossip.peer_id}"],
            "peers": {"configured": len(self.peers), "connected": sorted(self.connected)},
            "registry": {"block": self.registry.block, "active": len(self.registry.active)},
            "tasks": {"seen": len(tasks), "run": sum(t.ran for t in tasks),
                      "certified": len(self._formed),
                      "onChain": sum(t.certified is not None for t in tasks),
                      "submitted": len(submissions),
                      "included": sum(state in LANDED for state in states)},
            "submissions": [{"task": "0x" + s.task_id.hex(), "tx": "0x" + s.tx_hash.hex(),
                             "nonce": s.nonce, "state": state}
                            for s, state in zip(submissions, states, strict=True)],
            "lastError": self.last_error,
            "energy": None if self.power is None else self.power.status(),
            "held": self._held(),
            "gossip": self._gossip_counters(),
        }

    def _gossip_counters(self) -> dict[str, int]:
        """The gossip host's counters since start: messages stored (``delivered``, of which
        ``synced`` came by catch-up sync), syncs refused to or from graylisted peers, synced
        messages rejected or undecided, anti-entropy rounds, and losses at the hand-over to
        the store (:mod:`node.gossip.delivery`, :mod:`node.gossip.catchup`)."""
        g = self.gossip
        return {"delivered": g.delivered_count, "duplicates": g.duplicates_dropped,
                "synced": g.synced_count, "syncRejected": g.sync_rejected,
                "syncUndecided": g.sync_undecided, "syncRefused": g.sync_refused,
                "syncServesRefused": g.sync_serves_refused,
                "antiEntropyRounds": g.anti_entropy_rounds,
                "handoffOverflows": g.handoff_overflows, "storeFailures": g.store_failures}

    def _held(self) -> dict[str, int]:
        """What is kept in memory per task (open tasks only, once certified ones are
        forgotten): the service's attestations, the cosigner's inputs and signed results."""
        cosigner = self.service.cosigner
        return {"tasks": len(self.service.attestations),
                "inputs": 0 if cosigner is None else len(cosigner.inputs),
                "signed": 0 if cosigner is None else len(cosigner.signed)}

    # -- reading the chain (in the pass) -------------------------------------------------

    async def _read_registry(self) -> None:
        head = self.chain.head_number()
        if head is None:
            return
        active = await self.chain.active_signers(self.tasks.registry, head)
        if self.registry.update(active, head):
            log.info("registry at block %d: %d active signer(s)", head, len(active))
        if self.plan is not None:
            for signer in active:
                if signer not in self.names:
                    self.names[signer] = await self.chain.satellite_name(
                        self.tasks.registry, signer, head)
        self.store.set_meta("registry", {"block": head,
                                         "active": ["0x" + a.hex() for a in active]})

    async def _scan(self) -> None:
        head = self.chain.head_number()
        if head is None:
            return
        scanned = self.store.get_meta("scanned_to")
        if isinstance(scanned, int):
            low = scanned + 1
        else:  # first start: from_block, or the oldest anchored block
            low = self.tasks.from_block if self.tasks.from_block is not None else 0
        if low > head:
            return
        # headers are kept for ``history`` blocks below each anchor: look no further back
        first = self.chain.oldest_anchored(max(low, head - self.node.history), head)
        if first is None:
            return
        if first > low:
            log.warning("mission: blocks %d..%d are not anchored here; TaskPosted logs in them "
                        "are not seen (scanning from %d)", low, first - 1, first)
        posted, certified = await self.chain.scan(self.tasks.attestations, first, head)
        self.store.learn(posted, certified, head)
        for task in posted:
            log.info("task 0x%s posted in block %d (quorum %d)", task.task_id.hex(),
                     task.epoch, task.quorum)
        for task_id in certified:
            log.info("task 0x%s certified on chain", task_id.hex())
            self.service.forget(task_id)  # the service's memory holds open tasks only

    # -- the work loop -------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad step must not end the mission
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("mission step failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await self._wake.wait()
            self._wake.clear()

    async def _step(self) -> None:
        inputs = await asyncio.to_thread(self._scan_inputs)
        for task in self.store.tasks(open_only=True):
            await self._maybe_run(task, inputs)
            await self._maybe_submit(task)

    def _scan_inputs(self) -> dict[bytes, Path]:
        """input hash -> file, for the files in ``[tasks] inputs`` (hashes cached by name,
        size and mtime)."""
        directory = self.tasks.inputs
        if not directory.is_dir():
            return {}
        found: dict[bytes, Path] = {}
        cache: dict[tuple[str, int, int], bytes] = {}
        for path in directory.iterdir():
            if path.name.startswith(".") or path.name.endswith(".tmp"):
                continue
            try:
                info = path.stat()
                if not path.is_file() or info.st_size > MAX_INPUT_BYTES:
                    continue
                key = (path.name, info.st_size, info.st_mtime_ns)
                digest = self._input_hashes.get(key) or keccak256(path.read_bytes())
            except OSError:
                continue  # removed meanwhile
            cache[key] = digest
            found[digest] = path
        self._input_hashes = cache
        return found

    async def _maybe_run(self, posted: PostedTask, inputs: dict[bytes, Path]) -> None:
        cosigner = self.service.cosigner
        assert cosigner is not None
        path = inputs.get(posted.input_hash)
        if path is None or posted.task_id in cosigner.signed \
                or posted.task_id in self._unrunnable:
            return
        if posted.task_id in self._unpublished and \
                self._unpublished[posted.task_id] == self.registry.block:
            return  # our own validator refused it: wait for a new registry snapshot
        if posted.model_hash != self.model.model_hash:
            self._warn_once(posted.task_id, f"needs model 0x{posted.model_hash.hex()}, this "
                                            f"node runs 0x{self.model.model_hash.hex()}")
            return
        try:
            task = Task.from_posted(posted.task_id, posted.model_hash, posted.input_hash,
                                    path.read_bytes())
        except (OSError, TaskError) as exc:
            self._warn_once(posted.task_id, f"input {path.name}: {exc}")
            return
        if self.power is not None and posted.task_id not in self._powered:
            fits, why = self.power.try_start("0x" + posted.task_id.hex())
            if not fits:
                if posted.task_id not in self._energy_waits:  # said once per task
                    self._energy_waits.add(posted.task_id)
                    log.info("task 0x%s %s", posted.task_id.hex(), why)
                return
            self._powered.add(posted.task_id)
            log.info("task 0x%s %s", posted.task_id.hex(), why)
        cosigner.hold(task)  # peers' attestations arriving from now on are re-executed
        try:
            att = await self.service.run_task(task, posted.epoch)
        except GossipError as exc:  # e.g. our key is not (yet) an active registered signer
            cosigner.signed.pop(posted.task_id, None)  # the same result is signed again later
            self._unpublished[posted.task_id] = self.registry.block
            self._warn_once(posted.task_id, f"attestation not gossiped: {exc}")
            return
        except (TaskError, WalletError) as exc:  # each try would be audited: once is enough
            self._unrunnable.add(posted.task_id)
            self._warn_once(posted.task_id, f"not run: {exc}")
            return
        self._unpublished.pop(posted.task_id, None)
        self.store.mark_ran(posted.task_id)
        log.info("task 0x%s run: output 0x%s, attestation gossiped", posted.task_id.hex(),
                 att.result.output_hash.hex())

    async def _maybe_submit(self, posted: PostedTask) -> None:
        builder = self.service.builder(TaskTerms(
            posted.task_id, posted.model_hash, posted.input_hash, posted.quorum))
        ready = builder.ready_outputs()
        if not ready:
            return
        certificate = builder.certificate(ready[0])
        loop = asyncio.get_running_loop()
        now = loop.time()
        if posted.task_id not in self._formed:
            self._formed[posted.task_id] = now
            log.info("task 0x%s: certificate formed (%d of quorum %d signers)",
                     posted.task_id.hex(), len(certificate.signers), posted.quorum)
            if self.plan is not None and self.plan_clock is not None:
                self._route(posted.task_id, certificate)
        if not self.tasks.submit or now < self._not_before.get(posted.task_id, 0.0) \
                or posted.task_id in self._after_refresh:
            return
        previous = self.store.submission(posted.task_id)
        if previous is not None:
            entry = None if self.node.outbox is None else self.node.outbox.get(previous.tx_hash)
            if entry is None:  # signed and recorded, never reached the outbox (killed)
                self._not_before[posted.task_id] = now + RETRY
                if await self._hand_over(posted.task_id, previous.raw):
                    return
                # refused by the outbox, so never sent: replaced by a new one below
            elif entry.state in ACTIVE or entry.state in LANDED:
                return
            # dropped or expired: this node's turn may come again, below
        line = self._turns.get(posted.task_id)
        if line is not None and self.plan_clock is not None:  # by route (module docstring)
            mine = next(t for t in line if t.signer == self.address)
            if self.plan_clock.now() < mine.due:
                return
        else:  # by address
            rank = (certificate.signers.index(self.address)
                    if self.address in certificate.signers else len(certificate.signers))
            due = (self._formed[posted.task_id] + self.tasks.submit_delay
                   + rank * self.tasks.fallback)
            if now < due:
                return
        self._not_before[posted.task_id] = now + RETRY
        await self._submit(posted, certificate, None if previous is None else previous.tx_hash)

    def _route(self, task_id: bytes, certificate: Certificate) -> None:
        """Fix the submitters' turns when the certificate forms: the holder whose route
        reaches a ground station first goes first (:mod:`node.mission.routing`)."""
        assert self.plan is not None and self.plan_clock is not None
        line = turns(self.plan, certificate.signers, [self.address], self.names,
                     self.plan_clock.now() + self.tasks.submit_delay * self.plan_clock.time_scale,
                     self.tasks.fallback * self.plan_clock.time_scale)
        self._turns[task_id] = line
        first = line[0]
        way = ("no route down in the plan" if first.route is None else " -> ".join(
            [first.route.source, *(h.receiver for h in first.route.hops)])
            + f", down at +{first.route.latency:.0f} s")  # node.demo.events reads this
        mine = next(t for t in line if t.signer == self.address)
        log.info("task 0x%s: certificate routed: %s submits first (%s); this node's turn %d",
                 task_id.hex(), self.names.get(first.signer, "0x" + first.signer.hex()), way,
                 mine.rank)

    async def _submit(self, posted: PostedTask, certificate: Certificate,
                      replacing: bytes | None) -> None:
        head = self.chain.head_number()
        if head is None:
            return
        contract = self.tasks.attestations
        try:
            output = await self.chain.certified_output(contract, posted.task_id, head)
            if output != bytes(32):
                self.store.mark_certified(posted.task_id, output)
                log.info("task 0x%s is already certified on chain: not submitting",
                         posted.task_id.hex())
                return
            data = certificate.calldata()
            gas = await self.chain.estimate_gas(self.address, contract, data)
            nonce = await self.chain.pending_nonce(self.address)
            max_fee, tip = await self.chain.fees()
        except RpcError as exc:
            if exc.code == EXECUTION_REVERTED:
                self._warn_once(posted.task_id, f"the contract would refuse the certificate "
                                                f"({exc}); not submitting it yet")
                return
            self._wait_for_refresh(posted.task_id, exc)
            return
        except UpstreamError as exc:
            self._wait_for_refresh(posted.task_id, exc)
            return
        request = TransactionRequest(FEE_MARKET, self.chain_id, nonce, gas, contract, 0, data,
                                     max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
        try:
            signed = await asyncio.to_thread(self.onboard.sign_transaction, request)
        except WalletError as exc:  # every refusal is audited: do not ask again soon
            self._not_before[posted.task_id] = asyncio.get_running_loop().time() + max(
                REFUSED_RETRY, self.tasks.fallback)
            self._warn_once(posted.task_id, f"the wallet refused to sign the submission: {exc}")
            return
        if replacing is None:
            kept = self.store.record_submission(posted.task_id, signed.hash, signed.raw, nonce)
        else:
            kept = self.store.replace_submission(posted.task_id, replacing, signed.hash,
                                                 signed.raw, nonce)
        if not kept:
            return
        log.info("task 0x%s: submitting its certificate (%d signatures) as 0x%s nonce %d",
                 posted.task_id.hex(), len(certificate.signatures), signed.hash.hex(), nonce)
        await self._hand_over(posted.task_id, signed.raw)

    async def _hand_over(self, task_id: bytes, raw: bytes) -> bool:
        """The node's eth_sendRawTransaction: admitted, fsynced in the outbox, flushed.
        False if it was refused (then it is not in the outbox and was never sent)."""
        try:
            await self.chain.send_raw(raw)
        except (RpcError, UpstreamError, ValueError) as exc:
            self.last_error = f"submission of task 0x{task_id.hex()} refused: {exc}"
            log.warning("task 0x%s: the outbox refused the submission: %s", task_id.hex(), exc)
            return False
        return True

    def _wait_for_refresh(self, task_id: bytes, why: Exception) -> None:
        """Out of contact, a read the verified cache cannot answer was queued by the node
        (orbital_pending); try again after the next refresh, not before."""
        self._after_refresh.add(task_id)
        log.info("task 0x%s: submission waits for the next contact: %s", task_id.hex(), why)

    def _warn_once(self, task_id: bytes, message: str) -> None:
        if (task_id, message) not in self._warned:
            self._warned.add((task_id, message))
            self.last_error = f"task 0x{task_id.hex()}: {message}"
            log.warning("task 0x%s: %s", task_id.hex(), message)
