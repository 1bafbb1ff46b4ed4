"""Chains and scenarios for the contract tests, shared by the eth-tester and anvil suites.

:func:`ethtester_web3` gives an in-process chain (eth-tester on py-evm, Prague) and
:func:`anvil_web3` wraps the ``anvil`` fixture; both return a :class:`DevChain` (a ``Web3``
plus funded private keys), so the same :class:`Scenario` -- deploy, register satellites,
post tasks, sign EIP-712 results with keys made here, submit certificates -- runs on either.
Every transaction is signed locally and sent with ``eth_sendRawTransaction``.

Reverts look different on the two: web3 raises ``ContractLogicError`` (with ``.data``) against
anvil, eth-tester raises its own ``TransactionFailed`` whose cause carries the revert bytes.
:func:`revert_of` hides that and names the Solidity custom error from the ABI.

The anvil suite reuses the scenarios with a fixture like::

    @pytest.fixture(scope="module")
    def sc(anvil: Anvil) -> Scenario:
        return Scenario(anvil_web3(anvil), satellites=5)

and the test functions of ``test_contracts_ethtester.py`` unchanged.
"""

from __future__ import annotations

import ast
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from contracts import eip712, merkle
from contracts.deploy import ATTESTATIONS, REGISTRY, Deployment, contract, deploy, transact


@dataclass
class DevChain:
    """A chain to test against: web3 plus the private keys of funded accounts."""

    w3: Web3
    private_keys: tuple[str, ...]
    name: str
    accounts: tuple[LocalAccount, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.accounts = tuple(Account.from_key(key) for key in self.private_keys)

    @property
    def deployer(self) -> LocalAccount:
        return self.accounts[0]


def ethtester_web3() -> DevChain:
    """A fresh eth-tester chain (py-evm backend, Prague, automine) with its ten funded
    default accounts (private keys 1..10)."""
    from eth_tester import EthereumTester, PyEVMBackend
    from eth_tester.backends.pyevm.main import get_default_account_keys
    from web3 import EthereumTesterProvider

    backend = PyEVMBackend()
    assert backend.chain.get_vm().fork == "prague"
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
    keys = tuple(key.to_hex() for key in get_default_account_keys())
    return DevChain(w3, keys, "eth-tester")


def anvil_web3(anvil: Any) -> DevChain:
    """Web3 over HTTP to the ``anvil`` fixture (``node/devnet.py``), with its dev keys."""
    w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
    return DevChain(w3, tuple(anvil.private_keys), "anvil")


def _revert_bytes(exc: BaseException) -> bytes | None:
    if isinstance(exc, ContractLogicError) and isinstance(exc.data, str) \
            and exc.data.startswith("0x"):
        return bytes.fromhex(exc.data[2:])
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        arg = current.args[0] if current.args else None
        if isinstance(arg, bytes):
            return arg
        if isinstance(arg, str):  # eth-tester: "b'...'" or "execution reverted: b'...'"
            text = arg.removeprefix("execution reverted: ")
            if text.startswith(("b'", 'b"')):
                with contextlib.suppress(ValueError, SyntaxError):
                    data = ast.literal_eval(text)
                    if isinstance(data, bytes):
                        return data
        current = current.__cause__ or current.__context__
    return None


def _is_revert(exc: BaseException) -> bool:
    if isinstance(exc, ContractLogicError):
        return True
    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:  # pragma: no cover - eth-tester is a test dependency
        return False
    return isinstance(exc, TransactionFailed)


def error_selectors(abi: Sequence[dict[str, Any]]) -> dict[bytes, str]:
    """4-byte selector -> custom error name, for the errors declared in ``abi``."""
    out = {}
    for item in abi:
        if item.get("type") == "error":
            types = ",".join(_abi_type(arg) for arg in item.get("inputs", []))
            out[keccak(text=f"{item['name']}({types})")[:4]] = item["name"]
    return out


def _abi_type(arg: dict[str, Any]) -> str:
    if arg["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in arg["components"])
        return f"({inner}){arg['type'][5:]}"
    return str(arg["type"])


def revert_of(call: Callable[[], Any], *abis: Sequence[dict[str, Any]]) -> str:
    """Run ``call``, which must revert; return the custom error's name (or ``Error(...)``
    text, or ``"revert"`` when there is no data). Fails if ``call`` succeeds."""
    try:
        call()
    except Exception as exc:
        if not _is_revert(exc):
            raise
        data = _revert_bytes(exc) or b""
        names: dict[bytes, str] = {}
        for abi in abis:
            names.update(error_selectors(abi))
        if data[:4] in names:
            return names[data[:4]]
        if data[:4] == keccak(text="Error(string)")[:4]:
            text = data[68:].rstrip(b"\x00").decode(errors="replace")
            return f"Error({text})"
        return "revert" if not data else "0x" + data.hex()
    raise AssertionError("expected a revert, the call succeeded")


def rand32() -> bytes:
    return os.urandom(32)


def high_s(signature: bytes) -> bytes:
    """The other valid signature for the same digest and key: s -> n - s, v flipped
    (rejected by contracts that require low s, EIP-2)."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    flipped = 55 - v if v in (27, 28) else v ^ 1
    return r + (eip712.SECP256K1_N - s).to_bytes(32, "big") + bytes([flipped])


class Scenario:
    """A deployment with ``satellites`` registered signer keys (made here, sorted ascending by
    address), and helpers to post tasks, sign results and submit certificates."""

    def __init__(self, chain: DevChain, *, satellites: int = 5) -> None:
        self.chain = chain
        self.w3 = chain.w3
        self.sender = chain.deployer
        self.deployment: Deployment = deploy(self.w3, self.sender)
        self.registry: Contract = contract(self.w3, REGISTRY, self.deployment.registry)
        self.attestations: Contract = contract(self.w3, ATTESTATIONS,
                                               self.deployment.attestations)
        self.chain_id = self.deployment.chain_id
        self.satellites: list[LocalAccount] = []
        self.add_satellites(satellites)

    # -- registry -------------------------------------------------------------------------

    def add_satellites(self, count: int) -> list[LocalAccount]:
        """Make and register ``count`` new signer keys; keep :attr:`satellites` sorted."""
        made = [Account.create() for _ in range(count)]
        for i, account in enumerate(made, len(self.satellites)):
            self.send(self.registry.functions.register(account.address, f"SAT-{i}", 60000 + i))
        self.satellites = sorted([*self.satellites, *made], key=lambda a: int(a.address, 16))
        return sorted(made, key=lambda a: int(a.address, 16))

    def add_operator(self, account: LocalAccount) -> LocalAccount:
        """Make ``account`` (a funded account of the chain) an operator of the registry."""
        self.send(self.registry.functions.addOperator(account.address))
        return account

    def register_under(self, operator: LocalAccount, count: int, label: str = "OP"
                       ) -> list[LocalAccount]:
        """``count`` new signer keys registered by ``operator`` (so under it), ascending; not
        added to :attr:`satellites`."""
        made = sorted((Account.create() for _ in range(count)), key=lambda a: int(a.address, 16))
        for i, account in enumerate(made):
            self.send(self.registry.functions.register(account.address, f"{label}-{i}", 61000 + i),
                      sender=operator)
        return made

    def send(self, call: Any, *, sender: LocalAccount | None = None, **kwargs: Any
             ) -> TxReceipt:
        return transact(self.w3, sender or self.sender, call, **kwargs)

    def reverts(self, call: Any) -> str:
        """The custom error a transaction for ``call`` (a bound function) reverts with,
        found with ``eth_call`` from the deployer."""
        return revert_of(lambda: call.call({"from": self.sender.address}),
                         self.attestations.abi, self.registry.abi)

    # -- tasks and results ----------------------------------------------------------------

    def post_task(self, quorum: int = 3, operators: int | None = None
                  ) -> tuple[bytes, bytes, bytes]:
        """Post a new task (with an operator quorum when ``operators`` is given, else the
        4-argument form: operator quorum 1); return (taskId, modelHash, inputHash)."""
        task = (rand32(), rand32(), rand32())
        args = (quorum,) if operators is None else (quorum, operators)
        self.send(self.attestations.functions.postTask(*task, *args))
        return task

    def result(self, task: tuple[bytes, bytes, bytes], output: bytes | None = None,
               *, epoch: int = 1) -> eip712.TaskResult:
        """A TaskResult for ``task`` with ``output`` (random by default)."""
        return make_result(task, rand32() if output is None else output, epoch)

    def digest(self, result: eip712.TaskResult, *, chain_id: int | None = None,
               verifying_contract: str | None = None) -> bytes:
        return task_digest(result, self.chain_id if chain_id is None else chain_id,
                           verifying_contract or self.deployment.attestations)

    def sign(self, account: LocalAccount, result: eip712.TaskResult, **domain: Any) -> bytes:
        """``account``'s 65-byte r||s||v signature of ``result`` (low s)."""
        return bytes(account.unsafe_sign_hash(self.digest(result, **domain)).signature)

    def signatures(self, result: eip712.TaskResult, signers: Sequence[LocalAccount],
                   **domain: Any) -> list[bytes]:
        return [self.sign(account, result, **domain) for account in signers]

    def certify(self, result: eip712.TaskResult, signers: Sequence[LocalAccount],
                **domain: Any) -> Any:
        """The bound ``submitCertificate`` call for ``signers``' signatures (in the given
        order)."""
        return self.attestations.functions.submitCertificate(
            result_tuple(result), self.signatures(result, signers, **domain))

    def certified_output(self, task_id: bytes) -> bytes:
        return bytes(self.attestations.functions.certifiedOutput(task_id).call())

    # -- batches --------------------------------------------------------------------------

    def batch(self, results: Sequence[eip712.TaskResult], signers: Sequence[LocalAccount],
              epoch: int = 1) -> tuple[bytes, Any]:
        """(root, bound ``submitBatchCertificate`` call) for ``results`` signed by
        ``signers``."""
        root = batch_root(results)
        digest = batch_digest(root, epoch, len(results), self.chain_id,
                              self.deployment.attestations)
        signatures = [bytes(a.unsafe_sign_hash(digest).signature) for a in signers]
        return root, self.attestations.functions.submitBatchCertificate(
            root, epoch, len(results), signatures)

    def batch_signatures(self, results: Sequence[eip712.TaskResult],
                         signers: Sequence[LocalAccount], epoch: int = 1) -> list[bytes]:
        """``signers``' signatures of the TaskBatch over ``results`` (in the given order)."""
        digest = batch_digest(batch_root(results), epoch, len(results), self.chain_id,
                              self.deployment.attestations)
        return [bytes(a.unsafe_sign_hash(digest).signature) for a in signers]

    def claim(self, account: LocalAccount, result: eip712.TaskResult) -> tuple[Any, ...]:
        """A ``Claim`` tuple: ``account``'s signature of ``result`` itself."""
        return (result_tuple(result), self.sign(account, result), 0, 0, [])

    def batch_claim(self, account: LocalAccount, results: Sequence[eip712.TaskResult],
                    index: int) -> tuple[Any, ...]:
        """A ``Claim`` tuple: ``account``'s signature of the batch of ``results`` (their
        epoch) with the proof of member ``index``."""
        (signature,) = self.batch_signatures(results, [account], results[index].epoch)
        _, proof = batch_proof(results, index)
        return (result_tuple(results[index]), signature, len(results), index, proof)

    def prove_member(self, results: Sequence[eip712.TaskResult], index: int) -> Any:
        """The bound ``proveBatchMember`` call for ``results[index]``."""
        root, proof = batch_proof(results, index)
        return self.attestations.functions.proveBatchMember(
            result_tuple(results[index]), root, proof, index)


# -- the single EIP-712 / Merkle definitions, adapted to the contract's argument shapes --


def make_result(task: tuple[bytes, bytes, bytes], output: bytes, epoch: int = 1
                ) -> eip712.TaskResult:
    """The TaskResult for ``task`` (taskId, modelHash, inputHash) with ``output``."""
    return eip712.TaskResult(*task, output, epoch)


def result_tuple(result: eip712.TaskResult) -> tuple[Any, ...]:
    """``result`` as the ABI tuple ``(bytes32,bytes32,bytes32,bytes32,uint64)``."""
    return result.as_tuple()


def task_digest(result: eip712.TaskResult, chain_id: int, verifying_contract: str) -> bytes:
    return bytes(eip712.task_result_digest(result, chain_id, to_checksum_address(
        verifying_contract)))


def batch_root(results: Sequence[eip712.TaskResult]) -> bytes:
    """Merkle root over the results' EIP-712 hashStruct leaves, in batch order."""
    return bytes(merkle.merkle_root(_leaves(results)))


def batch_proof(results: Sequence[eip712.TaskResult], index: int
                ) -> tuple[bytes, list[bytes]]:
    """(root, proof of ``results[index]``)."""
    leaves = _leaves(results)
    return bytes(merkle.merkle_root(leaves)), [bytes(p) for p in merkle.merkle_proof(leaves, index)]


def batch_digest(root: bytes, epoch: int, count: int, chain_id: int,
                 verifying_contract: str) -> bytes:
    return bytes(eip712.task_batch_digest(eip712.TaskBatch(root, epoch, count), chain_id,
                                          to_checksum_address(verifying_contract)))


def _leaves(results: Sequence[eip712.TaskResult]) -> list[bytes]:
    return [bytes(eip712.task_result_hash_struct(r)) for r in results]
