"""The ground segment of the demo: a devnet chain, the contracts, and the operators.

The chain is anvil (:mod:`node.devnet`), started by the demo. The well-known dev accounts
play the ground's roles: account 0 deploys the contracts and funds the satellites; accounts
1..3 are the operators, who register satellites under themselves (round robin, so a task's
operator quorum means distinct operators) and sign heads for the satellites' ``ground``
trust (2 of 3). Everything here talks to anvil directly: the ground trusts its own chain;
the satellites trust nothing they download.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3

from contracts.deploy import ATTESTATIONS, REGISTRY, Deployment, contract, deploy, transact
from node.chain.hashing import keccak256
from node.devnet import DEV_PRIVATE_KEYS, Anvil
from node.tasks.task import derive_task_id
from wallet.files import write_atomic
from wallet.heads import Head, sign_head_by, signed_head_to_json
from wallet.keys.keystore import KeystoreSigner, create_keystore

OPERATORS = 3
"""Operator accounts (dev accounts 1..3); heads need :data:`HEAD_THRESHOLD` of them."""
HEAD_THRESHOLD = 2
FUNDING_WEI = 10**18
"""What each satellite's key is given to pay for certificate submissions."""


@dataclass(frozen=True)
class PostedTask:
    """A task the ground posted: its id, input bytes and the block it was posted in."""

    task_id: bytes
    input: bytes
    block: int
    quorum: int
    operator_quorum: int
    posted_at: float  # plan time


@dataclass
class GroundChain:
    """anvil with the contracts deployed, and the ground's accounts."""

    anvil: Anvil
    w3: Web3
    deployment: Deployment
    deployer: LocalAccount
    operators: tuple[LocalAccount, ...]
    head_signers: tuple[KeystoreSigner, ...]
    """The operators' keys as the ground holds them (keystores), for signing heads."""
    registered: dict[bytes, LocalAccount] = field(default_factory=dict)
    """Satellite signer address -> the operator it is registered under."""

    @classmethod
    def deploy(cls, anvil: Anvil, keys: Path) -> GroundChain:
        """Deploy the registry and the attestation contract; make dev accounts 1..3
        operators, their keys kept in keystores under ``keys``."""
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
        deployer = Account.from_key(DEV_PRIVATE_KEYS[0])
        operators = tuple(Account.from_key(k) for k in DEV_PRIVATE_KEYS[1:1 + OPERATORS])
        deployment = deploy(w3, deployer, operators=[o.address for o in operators])
        keys.mkdir(parents=True, exist_ok=True)
        password = os.urandom(16).hex()
        signers = []
        for i, operator in enumerate(operators[:HEAD_THRESHOLD]):
            path = keys / f"operator-{i + 1}.json"
            create_keystore(path, password, private_key=bytes(operator.key), kdf="pbkdf2",
                            iterations=1000)
            signers.append(KeystoreSigner(path, password))
        return cls(anvil, w3, deployment, deployer, operators, tuple(signers))

    @property
    def operator_addresses(self) -> list[str]:
        return [o.address for o in self.operators]

    def signed_head(self) -> tuple[int, str]:
        """The chain's latest block, signed by :data:`HEAD_THRESHOLD` operators: (its
        number, the signed-head file text a satellite in ``ground`` trust accepts)."""
        block = self.w3.eth.get_block("latest")
        head = Head(self.deployment.chain_id, block["number"], bytes(block["hash"]),
                    block["timestamp"])
        return head.number, signed_head_to_json(sign_head_by(head, self.head_signers))

    @staticmethod
    def uplink(directory: Path, name: str, data: bytes) -> None:
        """What an uplink leaves on board: the whole file, durably, under its name."""
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / name, data)

    @property
    def registry(self) -> Any:
        return contract(self.w3, REGISTRY, self.deployment.registry)

    @property
    def attestations(self) -> Any:
        return contract(self.w3, ATTESTATIONS, self.deployment.attestations)

    def register(self, address: bytes, name: str, norad: int) -> LocalAccount:
        """Register a satellite's key under the next operator (round robin) and fund it."""
        operator = self.operators[len(self.registered) % len(self.operators)]
        checksummed = to_checksum_address(address)
        transact(self.w3, operator, self.registry.functions.register(checksummed, name, norad))
        transact(self.w3, self.deployer, {"to": checksummed, "value": FUNDING_WEI,
                                          "gas": 21000})
        self.registered[bytes(address)] = operator
        return operator

    def post_task(self, model_hash: bytes, data: bytes, quorum: int, operator_quorum: int,
                  posted_at: float) -> PostedTask:
        """An operator posts a task on ``data`` (its keccak256 is the input hash)."""
        task_id = derive_task_id(model_hash, keccak256(data), time.time_ns())
        receipt = transact(self.w3, self.operators[0], self.attestations.functions.postTask(
            task_id, model_hash, keccak256(data), quorum, operator_quorum))
        return PostedTask(task_id, data, receipt["blockNumber"], quorum, operator_quorum,
                          posted_at)

    def certified_output(self, task_id: bytes) -> bytes:
        """What the contract holds as the task's certified output (zero: not yet)."""
        return bytes(self.attestations.functions.certifiedOutput(task_id).call())

    def mine(self) -> None:
        """One empty block, so heads move while nothing else happens."""
        self.anvil.rpc("evm_mine")
