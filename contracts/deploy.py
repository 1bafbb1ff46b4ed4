"""Load the compiled contracts and deploy them to a chain.

The artifacts (``contracts/artifacts/<Name>.json``: ``abi``, ``bytecode``,
``deployedBytecode``, ``compiler``, ``sourceHash``) are committed and shipped with the
package; ``orbital contracts build`` re-creates them from the Solidity sources.

A deployment is two contracts: ``SatelliteRegistry`` (who may sign, under which operator) and
``TaskAttestations(registry)`` (tasks, certificates, equivocation evidence), bound together by
``registry.setAttestations(attestations)``. :func:`deploy`
sends raw transactions signed locally with eth-account, so it works on any node that accepts
``eth_sendRawTransaction`` -- anvil, eth-tester, a public RPC -- without unlocked accounts,
and writes a small JSON file the node configuration points at::

    {"chainId": 31337, "registry": "0x...", "attestations": "0x...",
     "deployedAt": 12, "deployer": "0x..."}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import TimeExhausted
from web3.types import TxParams, TxReceipt

from contracts.errors import ArtifactError, DeploymentError, MalformedError

REGISTRY = "SatelliteRegistry"
ATTESTATIONS = "TaskAttestations"
ARTIFACT_NAMES = (REGISTRY, ATTESTATIONS)
ARTIFACT_KEYS = ("abi", "bytecode", "deployedBytecode", "compiler", "sourceHash")

RECEIPT_TIMEOUT = 60.0
"""Seconds :func:`transact` waits for a receipt before giving up."""
GAS_HEADROOM = 1.25
"""Gas limit = estimate x this: the estimate is exact for these contracts, the rest is slack."""
PRIORITY_FEE = 10**9
"""Tip per gas (1 gwei) on chains with a base fee."""




def artifacts_dir() -> Path:
    """The directory of the packaged artifacts (it may not exist before a build)."""
    return Path(str(resources.files("contracts") / "artifacts"))


def load_artifact(name: str, directory: Path | None = None) -> dict[str, Any]:
    """The compiled artifact ``<name>.json`` (from the package unless ``directory``)."""
    base = resources.files("contracts") / "artifacts" if directory is None else directory
    path = base / f"{name}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(
            f"no compiled artifact for {name} ({path}): run `orbital contracts build`"
        ) from None
    try:
        artifact = json.loads(text)
    except ValueError as exc:
        raise ArtifactError(
            f"{path} is not JSON ({exc}): run `orbital contracts build`") from None
    missing = [key for key in ("abi", "bytecode") if key not in artifact]
    if not isinstance(artifact, dict) or missing:
        raise ArtifactError(f"{path} lacks {', '.join(missing) or 'an object'}: "
                            "run `orbital contracts build`")
    return artifact


def _hex(data: str) -> str:
    return data if data.startswith("0x") else "0x" + data


def contract(w3: Web3, name: str, address: str, *, directory: Path | None = None) -> Contract:
    """A web3 contract object for the deployed ``name`` at ``address``."""
    if not is_address(address):
        raise MalformedError(f"{address!r} is not an address")
    abi = load_artifact(name, directory)["abi"]
    return w3.eth.contract(address=to_checksum_address(address), abi=abi)


def contract_factory(w3: Web3, name: str, *, directory: Path | None = None) -> type[Contract]:
    """A web3 contract factory (abi + bytecode) for deploying ``name``."""
    artifact = load_artifact(name, directory)
    return w3.eth.contract(abi=artifact["abi"], bytecode=_hex(artifact["bytecode"]))


def as_account(key_or_account: str | bytes | LocalAccount) -> LocalAccount:
    """An eth-account signer from a private key (hex or 32 bytes) or an account."""
    if isinstance(key_or_account, LocalAccount):
        return key_or_account
    try:
        return Account.from_key(key_or_account)
    except (ValueError, TypeError) as exc:
        raise MalformedError(f"not a private key: {type(exc).__name__}") from None


def _fees(w3: Web3) -> dict[str, int]:
    base_fee = w3.eth.get_block("latest").get("baseFeePerGas")
    if base_fee is None:
        return {"gasPrice": w3.eth.gas_price}
    return {"maxFeePerGas": 2 * base_fee + PRIORITY_FEE, "maxPriorityFeePerGas": PRIORITY_FEE}


def transact(
    w3: Web3,
    sender: LocalAccount,
    call: ContractFunction | TxParams,
    *,
    gas: int | None = None,
    timeout: float = RECEIPT_TIMEOUT,
    check: bool = True,
) -> TxReceipt:
    """Sign ``call`` (a bound contract function, a constructor or a transaction dict) with
    ``sender``, send it raw and wait (at most ``timeout`` s) for its receipt.

    The gas limit is estimated unless given (an estimate that reverts raises web3's
    ``ContractLogicError``). With ``check`` a receipt with status 0 raises
    :class:`DeploymentError`."""
    base: dict[str, Any] = {
        "from": sender.address,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        **_fees(w3),
    }
    if gas is not None:
        base["gas"] = gas
    if isinstance(call, Mapping):
        tx: dict[str, Any] = {**base, **call}
    else:
        tx = dict(call.build_transaction(base))  # type: ignore[arg-type]
    if "gas" not in tx:
        tx["gas"] = int(w3.eth.estimate_gas(tx) * GAS_HEADROOM)  # type: ignore[arg-type]
    signed = sender.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.1)
    except TimeExhausted:
        raise DeploymentError(
            f"transaction {tx_hash.to_0x_hex()} not mined within {timeout:g} s") from None
    if check and receipt["status"] != 1:
        raise DeploymentError(f"transaction {tx_hash.to_0x_hex()} reverted "
                              f"(block {receipt['blockNumber']}, gas {receipt['gasUsed']})")
    return receipt


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on one chain."""

    chain_id: int
    registry: str
    """``SatelliteRegistry`` address (checksummed)."""
    attestations: str
    """``TaskAttestations`` address (checksummed)."""
    block: int
    """Block holding the ``TaskAttestations`` deployment: scan events from here."""
    deployer: str
    """Address that deployed both (owner of the registry)."""

    def to_json(self) -> dict[str, Any]:
        return {"chainId": self.chain_id, "registry": self.registry,
                "attestations": self.attestations, "deployedAt": self.block,
                "deployer": self.deployer}

    @classmethod
    def from_json(cls, data: Any) -> Deployment:
        if not isinstance(data, dict):
            raise MalformedError("a deployment is a JSON object")
        try:
            fields = {"chain_id": data["chainId"], "registry": data["registry"],
                      "attestations": data["attestations"], "block": data["deployedAt"],
                      "deployer": data["deployer"]}
        except KeyError as exc:
            raise MalformedError(f"deployment lacks {exc.args[0]!r}") from None
        for key in ("chain_id", "block"):
            if not isinstance(fields[key], int) or isinstance(fields[key], bool) \
                    or fields[key] < 0:
                raise MalformedError(f"deployment {key} is not a non-negative integer")
        for key in ("registry", "attestations", "deployer"):
            if not isinstance(fields[key], str) or not is_address(fields[key]):
                raise MalformedError(f"deployment {key} {fields[key]!r} is not an address")
            fields[key] = to_checksum_address(fields[key])
        return cls(**fields)

    def save(self, path: Path | str) -> None:
        """Write the deployment file (atomically: a temporary file, then a rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    def registry_contract(self, w3: Web3) -> Contract:
        return contract(w3, REGISTRY, self.registry)

    def attestations_contract(self, w3: Web3) -> Contract:
        return contract(w3, ATTESTATIONS, self.attestations)


def load_deployment(path: Path | str) -> Deployment:
    """Read a deployment file written by :func:`deploy`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DeploymentError(f"cannot read deployment {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedError(f"deployment {path} is not JSON: {exc}") from None
    return Deployment.from_json(data)


def deploy(
    w3: Web3,
    sender_key_or_account: str | bytes | LocalAccount,
    *,
    operators: Iterable[str] = (),
    out: Path | str | None = None,
    timeout: float = RECEIPT_TIMEOUT,
    directory: Path | None = None,
) -> Deployment:
    """Deploy ``SatelliteRegistry``, then ``TaskAttestations(registry)``, name the latter in
    the registry (``setAttestations``: the one contract whose equivocation reports drop a
    satellite), then add each of ``operators`` to the registry; write the deployment to
    ``out`` if given.

    Every transaction is signed locally by ``sender_key_or_account`` and its receipt awaited
    (``timeout`` seconds each)."""
    sender = as_account(sender_key_or_account)
    operators = list(operators)
    for operator in operators:
        if not is_address(operator):
            raise MalformedError(f"operator {operator!r} is not an address")
    chain_id = w3.eth.chain_id
    if w3.eth.get_balance(sender.address) == 0:
        raise DeploymentError(f"deployer {sender.address} has no ether on chain {chain_id}: "
                              "fund it first")
    registry_receipt = transact(
        w3, sender, contract_factory(w3, REGISTRY, directory=directory).constructor(),
        timeout=timeout)
    registry = registry_receipt["contractAddress"]
    attestations_receipt = transact(
        w3, sender,
        contract_factory(w3, ATTESTATIONS, directory=directory).constructor(registry),
        timeout=timeout)
    registry_contract = contract(w3, REGISTRY, registry, directory=directory)
    transact(w3, sender,
             registry_contract.functions.setAttestations(attestations_receipt["contractAddress"]),
             timeout=timeout)
    for operator in operators:
        transact(w3, sender,
                 registry_contract.functions.addOperator(to_checksum_address(operator)),
                 timeout=timeout)
    deployment = Deployment(
        chain_id=chain_id,
        registry=to_checksum_address(registry),
        attestations=to_checksum_address(attestations_receipt["contractAddress"]),
        block=attestations_receipt["blockNumber"],
        deployer=sender.address,
    )
    if out is not None:
        deployment.save(out)
    return deployment
