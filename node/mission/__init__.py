"""The satellite's mission in ``orbital node run``: the wallet, attestation gossip and AI tasks
composed with the verified node (DESIGN.md, data flow 4).

* :func:`open_mission` -- opens what the ``[wallet]``, ``[gossip]`` and ``[tasks]`` sections
  name, each closed by the node's exit stack: the on-board signer (the wallet CLI's own
  opening code, :func:`node.cli.wallet_run._onboard`: key, pinned policy, ledger, audit log),
  the mission store, the libp2p host with its stable identity (:func:`gossip_seed`) and the
  attestation validator over a verified registry snapshot, the equivocation detector, the
  cosigner and the :class:`~node.gossip.service.AttestationService`;
* :mod:`node.mission.mission` -- :class:`Mission`: tasks learnt from verified logs, run when
  their input is uplinked, attested over gossip, certified, submitted once through the outbox;
* :mod:`node.mission.chain` -- the verified reads and the one write path it uses;
* :mod:`node.mission.store` -- what must survive a restart;
* :mod:`node.mission.peers` -- the neighbours kept connected.

Errors a user can meet at start (no password, a policy that cannot sign certificates, a bad
seed file, a port in use) are :class:`~node.service.ServiceError` naming the config key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from node.attest.certificate import SUBMIT_CERTIFICATE
from node.gossip.config import GossipConfig as HostConfig
from node.gossip.config import GossipError
from node.gossip.host import GossipNode
from node.gossip.transport import peer_id_of
from node.mission.chain import RegistrySnapshot
from node.mission.mission import Mission
from node.mission.store import MissionStore
from node.service import ServiceError

if TYPE_CHECKING:
    from node.config import NodeConfig, TasksConfig, WalletConfig
    from node.rpc.verified_node import VerifiedNode
    from wallet.onboard import OnboardSigner

__all__ = ["Mission", "gossip_seed", "open_mission", "peer_id_of"]


async def open_mission(config: NodeConfig | None, node: VerifiedNode, data_dir: Path,
                       resources: contextlib.AsyncExitStack) -> Mission | None:
    """The mission of ``config`` (None without ``[tasks]``), its parts opened and started;
    ``resources`` closes them (after the node's task tree has stopped)."""
    if config is None or config.tasks is None:
        return None
    from node.attest.cosigner import Cosigner
    from node.attest.equivocation import EquivocationDetector
    from node.gossip.service import AttestationService
    from node.gossip.validator import AttestationValidator
    from node.tasks import model as qmodel

    tasks, gossip_config = config.tasks, config.gossip
    assert gossip_config is not None and config.wallet is not None  # node.config checks
    try:
        model = qmodel.load() if tasks.model is None else qmodel.load(tasks.model)
    except qmodel.ModelError as exc:
        raise ServiceError(f"tasks.model: {exc}") from None
    onboard = await open_wallet(config.wallet, resources)
    if tasks.submit:
        _check_policy(onboard, config.chain_id, tasks)
    store = MissionStore(data_dir / "mission.sqlite")
    resources.callback(store.close)
    registry = RegistrySnapshot()
    saved = store.get_meta("registry")
    if isinstance(saved, dict):
        registry.update((bytes.fromhex(a[2:]) for a in saved["active"]), saved["block"])
    validator = AttestationValidator(registry, [model.model_hash], config.chain_id,
                                     tasks.attestations)
    host = HostConfig(host=gossip_config.host, store_path=str(gossip_config.store))
    gossip_config.store.parent.mkdir(parents=True, exist_ok=True)
    try:
        gossip = await GossipNode.start(gossip_config.port, gossip_seed(gossip_config.key),
                                        validator=validator, config=host)
    except GossipError as exc:
        raise ServiceError(f"gossip.listen: the libp2p host did not start on "
                           f"{gossip_config.host}:{gossip_config.port}: {exc}") from None
    resources.push_async_callback(gossip.stop)
    detector = EquivocationDetector(data_dir / "equivocation.sqlite")
    resources.callback(detector.close)
    cosigner = Cosigner(onboard, model, config.chain_id, tasks.attestations)
    service = await AttestationService(gossip, config.chain_id, tasks.attestations,
                                       cosigner=cosigner, detector=detector).start()
    resources.push_async_callback(service.stop)
    power = None
    if config.power is not None:
        from node.contact import plan_clock
        from node.mission.power import OnboardPower, PowerError
        from sim_link.plan import plan_from_json

        assert config.link is not None  # node.config checks
        try:
            power = OnboardPower(config.power, plan_from_json(config.link.plan.read_bytes()),
                                 config.link.node, plan_clock(config.link), store)
        except PowerError as exc:
            raise ServiceError(f"power: {exc}") from None
    mission = Mission(config, node, onboard, model, store, registry, gossip, service, power)
    node.extra_status["mission"] = mission.status
    return mission


async def open_wallet(wallet: WalletConfig, resources: contextlib.AsyncExitStack
                      ) -> OnboardSigner:
    """The on-board signer of ``[wallet]``: its home's ``wallet.toml`` (key, token, pinned
    policy) with the backend (and token) of the node's config, opened exactly as ``orbital
    wallet`` opens it; the password or PIN comes from ``password_file``/``pin_file``, else
    the wallet CLI's environment variable, else a prompt on a terminal."""
    from node.cli.wallet_run import _onboard
    from wallet.config import load_config, wallet_home
    from wallet.errors import WalletError

    home = wallet_home(None if wallet.home is None else str(wallet.home))
    stack = resources.enter_context(contextlib.ExitStack())
    try:
        config = load_config(home)
        config = replace(config, backend=wallet.backend, token=wallet.token or config.token)
        args = argparse.Namespace(password_file=wallet.password_file, pin_file=wallet.pin_file)
        return await asyncio.to_thread(_onboard, config, args, stack)
    except WalletError as exc:
        where = "password_file" if wallet.backend == "keystore" else "pin_file"
        raise ServiceError(f"wallet: {home}: {exc} (or [wallet] {where} = FILE in the node's "
                           f"config)") from None


def _check_policy(onboard: OnboardSigner, chain_id: int, tasks: TasksConfig) -> None:
    """Refuse to start a submitting node whose policy can never sign a submission."""
    from eth_utils import keccak

    from wallet.onboard import transaction_signing_request
    from wallet.transactions import FEE_MARKET, TransactionRequest

    probe = TransactionRequest(FEE_MARKET, chain_id, 0, 200_000, tasks.attestations, 0,
                               keccak(text=SUBMIT_CERTIFICATE)[:4] + bytes(64),
                               max_fee_per_gas=10**9, max_priority_fee_per_gas=10**9)
    decision = onboard.policy.evaluate(
        transaction_signing_request(probe, onboard.address, None), now=time.time(),
        ledger=onboard.ledger)
    if decision.rule in ("chain_id", "tx_type", "destination", "calldata") \
            and not decision.allowed:
        raise ServiceError(
            f"tasks.submit: the wallet's policy refuses submitCertificate on "
            f"0x{tasks.attestations.hex()} ({decision.rule}: {decision.reason}); allow it "
            f"(attestation_only_policy(..., submit=True) writes such a policy) or set "
            f"submit = false")


def gossip_seed(path: Path) -> bytes:
    """The 32-byte seed of the node's peer identity in ``path`` (64 hex digits), created
    (mode 600, fsynced) at first start: the peer id stays the same across restarts."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return _new_seed(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"gossip.key: cannot read {path}: {exc}") from None
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise ServiceError(f"gossip.key: {path} does not hold a seed (64 hex digits); "
                           f"remove it to make a new identity (a new peer id)")
    return seed


def _new_seed(path: Path) -> bytes:
    seed = os.urandom(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (seed.hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return seed
