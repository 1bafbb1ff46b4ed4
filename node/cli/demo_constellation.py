"""The constellation part of ``orbital demo``: three satellites on 127.0.0.1, each its own
py-libp2p gossipsub host (Noise, yamux), durable gossip store, keystore key behind the on-board
policy and audit log. SAT-0 classifies digit tiles with the committed int8 model and gossips
its signed result; SAT-1 and SAT-2 re-execute the task, get the same bytes, co-sign; every
satellite assembles the same 3-of-3 certificate that TaskAttestations accepts. A forged
attestation (an unregistered key) is refused by the validator. Everything lives in a
temporary directory; the demo's keystores use a light KDF (they are thrown away)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

from node.attest import Cosigner, StaticRegistry, attest, encode
from node.attest.attestation import attestation_only_policy
from node.attest.certificate import TaskTerms
from node.gossip import AttestationService, AttestationValidator, GossipConfig, GossipNode
from node.gossip.config import GossipError
from node.tasks import model as qmodel
from node.tasks.task import Task
from wallet import audit as audit_log
from wallet.audit import AuditLog
from wallet.keys.keystore import KeystoreSigner, create_keystore
from wallet.onboard import OnboardSigner
from wallet.policy import PolicyLedger, load_policy, pin_policy

CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SATELLITES = 3
EXPECTED = Path(qmodel.__file__).parent / "expected"
TILES = 8


def run_constellation_demo(directory: Path, say: Callable[[str], None]) -> bool:
    """Run the constellation steps in ``directory``; return whether every outcome was right."""
    return asyncio.run(_demo(directory, say))


async def _demo(directory: Path, say: Callable[[str], None]) -> bool:
    model = qmodel.load()
    inputs = (EXPECTED / "digits-inputs.bin").read_bytes()
    task = Task.create(model.model_hash, inputs[: 64 * TILES], nonce=int(time.time()))
    (directory / "policy.toml").write_text(attestation_only_policy(CHAIN_ID, CONTRACT))
    policy = load_policy(directory / "policy.toml", pin_policy(directory / "policy.toml"))
    signers = []
    for i in range(SATELLITES):
        path = directory / f"sat{i}-key.json"
        create_keystore(path, "demo", kdf="pbkdf2", iterations=1000)
        signers.append(KeystoreSigner(path, "demo"))
    registry = StaticRegistry([s.address for s in signers])
    say(f"[6/6] constellation: {SATELLITES} satellites on 127.0.0.1 (py-libp2p gossipsub, "
        f"Noise), task 0x{task.task_id.hex()[:12]}.. = model 0x{model.model_hash.hex()[:8]}.. "
        f"on {TILES} digit tiles")
    async with contextlib.AsyncExitStack() as stack:
        services = []
        for i, signer in enumerate(signers):
            stack.callback(signer.close)
            validator = AttestationValidator(registry, [model.model_hash], CHAIN_ID, CONTRACT)
            config = GossipConfig(store_path=str(directory / f"sat{i}-gossip.sqlite"))
            gossip = await GossipNode.start(validator=validator, config=config)
            stack.push_async_callback(gossip.stop)
            ledger = stack.enter_context(PolicyLedger(directory / f"sat{i}-ledger.sqlite"))
            audit = stack.enter_context(AuditLog(directory / f"sat{i}-audit.sqlite", signer))
            cosigner = Cosigner(OnboardSigner(signer, policy, ledger, audit), model, CHAIN_ID,
                                CONTRACT)
            cosigner.hold(task)  # every satellite received the tiles on its uplink
            service = await AttestationService(gossip, CHAIN_ID, CONTRACT,
                                               cosigner=cosigner).start()
            stack.push_async_callback(service.stop)
            services.append(service)
        for left, right in itertools.pairwise(services):
            await right.gossip.connect(left.gossip.listen_addr)
        async with asyncio.timeout(20):
            for left, right in itertools.pairwise(services):
                while right.gossip.peer_id not in await left.gossip.mesh_peers():
                    await asyncio.sleep(0.05)
        say("      linked SAT-0 - SAT-1 - SAT-2; SAT-0 runs the task and gossips its "
            "signed result")
        began = time.perf_counter()
        own = await services[0].run_task(task, epoch=1)
        classes = qmodel.predicted_classes(model, qmodel.infer(model, task.input))
        labels = json.loads((EXPECTED / "digits.json").read_text())["labels"][:TILES]
        right = sum(c == label for c, label in zip(classes, labels, strict=True))
        terms = TaskTerms(task.task_id, task.model_hash, task.input_hash, SATELLITES)
        async with asyncio.timeout(30):
            certificates = await asyncio.gather(*(s.certificate(terms) for s in services))
        elapsed = time.perf_counter() - began
        same = all(c == certificates[0] for c in certificates)
        agreed = all(c.agreed for s in services[1:] for c in s.considered)
        say(f"      classes {classes} ({right} of {TILES} match the labels), outputHash "
            f"0x{own.result.output_hash.hex()[:12]}..")
        say(f"      SAT-1, SAT-2 re-executed: "
            f"{'same bytes, co-signed' if agreed else 'MISMATCH'}")
        say(f"      certificate {SATELLITES}-of-{SATELLITES} on every satellite in "
            f"{elapsed:.2f} s: {'identical' if same else 'DIFFERENT (this is a bug)'}, "
            f"signers ascending as TaskAttestations requires")
        forger = KeystoreSigner(_forger_key(directory), "demo")
        stack.callback(forger.close)
        forged = encode(attest(own.result, forger, CHAIN_ID, CONTRACT))
        try:
            await services[2].gossip.publish(forged)
            say("      forged attestation (unregistered key): ACCEPTED (this is a bug)")
            refused = False
        except GossipError as exc:
            say(f"      forged attestation (unregistered key): refused: {exc}")
            refused = True
    audited = 0
    for i, signer in enumerate(signers):
        head = audit_log.verify(directory / f"sat{i}-audit.sqlite",
                                expected_signer=signer.address)
        audited += head.seq
    say(f"      audit logs: {audited} entries verified across {SATELLITES} satellites "
        f"(each signature policy-checked and logged)")
    return same and agreed and refused


def _forger_key(directory: Path) -> Path:
    path = directory / "forger-key.json"
    create_keystore(path, "demo", kdf="pbkdf2", iterations=1000)
    return path
