"""Ground operators for a node in ``ground`` trust, for tests: m of n operator keys sign
anvil's newest block (an EIP-712 ``Head``, :mod:`wallet.heads`) and deliver it to the node
with ``orbital_submitHead`` -- only while the link is up, as an uplink would.

The operators trust their own chain (they read anvil directly); the node trusts nothing
but their signatures: it anchors a head only when ``threshold`` of its configured
``operators`` signed it, then proves everything else against it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.devnet import rpc_call


@dataclass
class GroundOperators:
    """``signers`` (keystore keys under ``directory``), ``threshold`` of whom sign each
    head; :meth:`start` delivers every new block of ``anvil_url`` to a node every
    ``interval`` seconds while ``link_up()`` says the link is up."""

    signers: tuple[Any, ...]
    threshold: int
    anvil_url: str
    chain_id: int
    interval: float = 0.5
    link_up: Callable[[], bool] = lambda: True
    delivered: int = -1
    """The number of the last block delivered and accepted."""
    errors: list[str] = field(default_factory=list)
    """Why deliveries failed (the node refused, or could not be reached), newest last."""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def create(cls, directory: Path, operators: int, threshold: int, anvil_url: str,
               chain_id: int, **options: Any) -> GroundOperators:
        """``operators`` fresh keys (keystores with a light KDF: a test, not the ground)."""
        from wallet.keys.keystore import KeystoreSigner, create_keystore

        if not 1 <= threshold <= operators:
            raise ValueError(f"orbital_trust('ground'): threshold {threshold} of {operators} "
                             "operators: want 1 <= threshold <= operators")
        directory.mkdir(parents=True, exist_ok=True)
        password = os.urandom(16).hex()
        signers = []
        for i in range(operators):
            path = directory / f"operator-{i + 1}.json"
            create_keystore(path, password, kdf="pbkdf2", iterations=2)
            signers.append(KeystoreSigner(path, password))
        return cls(tuple(signers), threshold, anvil_url, chain_id, **options)

    @property
    def addresses(self) -> list[str]:
        """The operators' addresses (``0x`` hex), as the node's ``[trust] operators``."""
        return ["0x" + signer.address.hex() for signer in self.signers]

    def signed_head(self) -> tuple[int, str]:
        """anvil's newest block signed by the first ``threshold`` operators: its number
        and the signed-head JSON ``orbital_submitHead`` takes."""
        from wallet.heads import Head, sign_head_by, signed_head_to_json

        block = rpc_call(self.anvil_url, "eth_getBlockByNumber", "latest", False)
        head = Head(self.chain_id, int(block["number"], 16),
                    bytes.fromhex(block["hash"][2:]), int(block["timestamp"], 16))
        signed = sign_head_by(head, self.signers[:self.threshold])
        return head.number, signed_head_to_json(signed)

    def deliver(self, node: Any) -> bool:
        """Sign anvil's newest block and submit it to ``node`` if it is new; whether the
        node has it now. A failure is recorded in :attr:`errors`, not raised."""
        try:
            number, text = self.signed_head()
            if number <= self.delivered:
                return True
            node.rpc("orbital_submitHead", text)
        except Exception as exc:  # the node restarting, the link going down meanwhile
            self.errors.append(f"{type(exc).__name__}: {exc}")
            del self.errors[:-20]
            return False
        self.delivered = number
        return True

    def start(self, node: Any) -> None:
        """Deliver in a thread until :meth:`stop`."""

        def run() -> None:
            while not self._stop.wait(self.interval):
                if self.link_up():
                    self.deliver(node)

        self._thread = threading.Thread(target=run, name="ground operators", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        for signer in self.signers:
            with contextlib.suppress(Exception):
                signer.close()
