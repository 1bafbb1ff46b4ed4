"""A persistent beacon light client: the sync protocol's store in SQLite, one per node.

:class:`LightClient` wraps :mod:`node.chain.beacon.sync_protocol` with what a satellite needs
around it:

* **a checkpoint policy** -- :meth:`LightClient.bootstrap` refuses a trusted block whose slot is
  older than ``max_checkpoint_age`` (default 14 days: a checkpoint beyond the weak-subjectivity
  period could have been signed over by a committee that has since withdrawn) or lies in the
  future;
* **a clock** -- the current slot comes from the network's genesis time and the wall clock
  (injectable), never from the data being verified;
* **durability** -- after every bootstrap, applied update and forced update the whole store
  (headers, committees, the best valid update, participation counters) is written in one SQLite
  transaction, so a restarted node resumes where it stopped (:meth:`LightClient.resume`);
* **decoded committee keys** kept across updates (:class:`~node.chain.beacon.bls.CommitteeCache`);
* **the execution head it proves** -- :attr:`LightClient.finalized_execution` and
  :attr:`LightClient.optimistic_execution`: block number, block hash and state root of the
  execution payload in the verified beacon header, which is what the execution-side
  verification (:mod:`node.chain.header_store` checkpoints, EIP-1186 proofs) may then trust.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any

from node.chain.anchor import Anchor, AnchorSource
from node.chain.beacon import sync_protocol as sp
from node.chain.beacon.bls import CommitteeCache
from node.chain.beacon.config import NetworkConfig
from node.chain.beacon.containers import FORKS, light_client_types
from node.chain.beacon.ssz import Container
from node.chain.errors import ChainError, VerificationError
from wallet.sqlite import open_durable, write_transaction

DAY = 86400.0
DEFAULT_MAX_CHECKPOINT_AGE = 14 * DAY
_SCHEMA = """
CREATE TABLE IF NOT EXISTS light_client (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    network TEXT NOT NULL,
    genesis_validators_root BLOB NOT NULL,
    trusted_block_root BLOB NOT NULL,
    store BLOB NOT NULL        -- see _encode_store
);
"""


class StaleCheckpoint(VerificationError):
    """The trusted block is older than the configured maximum age (or in the future)."""


class LightClientStateError(ChainError):
    """The persisted light-client state is missing, damaged or for another network."""


@dataclass(frozen=True)
class ExecutionHead:
    """The execution block a verified beacon header commits to (Capella and later)."""

    slot: int
    """Beacon slot of the header."""
    block_number: int
    block_hash: bytes
    state_root: bytes

    def anchor(self, kind: str = "finalized") -> Anchor:
        """The proven execution block as an anchor of the header store (source ``beacon``,
        with the proven stateRoot): its header and every ancestor are then verified by
        walking ``parentHash`` backward, and proofs are checked against ``state_root``.
        ``kind`` says which light-client header it came from ("finalized" or
        "optimistic")."""
        return Anchor(self.block_number, self.block_hash, AnchorSource.BEACON,
                      f"light client, {kind}, beacon slot {self.slot}", self.state_root)

    def as_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "blockNumber": self.block_number,
                "blockHash": "0x" + self.block_hash.hex(),
                "stateRoot": "0x" + self.state_root.hex()}


def execution_head(header: Any) -> ExecutionHead | None:
    """The execution head of a light-client header, None for Altair-format headers (no
    execution payload in the light-client data before Capella)."""
    execution = getattr(header, "execution", None)
    if execution is None or execution == type(execution).default():
        return None
    return ExecutionHead(header.beacon.slot, execution.block_number, execution.block_hash,
                         execution.state_root)


# -- serialisation of the store: each object with the fork whose class it is -------------

_FAMILIES = ("LightClientHeader", "SyncCommittee", "LightClientUpdate")


def _fork_of(obj: Container, family: str, preset: str) -> str:
    for fork in FORKS:
        if type(obj) is light_client_types(fork, preset).container(family):
            return fork
    raise LightClientStateError(f"{type(obj).__qualname__} is not a {preset} {family}")


def _pack(obj: Container | None, family: str, preset: str) -> bytes:
    if obj is None:
        return b"\x00"
    fork = _fork_of(obj, family, preset).encode()
    return bytes([len(fork)]) + fork + obj.encode()


def _frame(parts: list[bytes]) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _unframe(data: bytes) -> list[bytes]:
    parts, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        parts.append(data[at + 4:at + 4 + size])
        at += 4 + size
    if at != len(data):
        raise LightClientStateError("persisted light-client store is truncated")
    return parts


def _unpack(data: bytes, family: str, preset: str) -> Any:
    if data == b"\x00":
        return None
    size = data[0]
    fork = data[1:1 + size].decode()
    return light_client_types(fork, preset).container(family).decode(data[1 + size:])


def _encode_store(store: sp.LightClientStore, preset: str) -> bytes:
    return _frame([
        _pack(store.finalized_header, "LightClientHeader", preset),
        _pack(store.current_sync_committee, "SyncCommittee", preset),
        _pack(store.next_sync_committee, "SyncCommittee", preset),
        _pack(store.best_valid_update, "LightClientUpdate", preset),
        _pack(store.optimistic_header, "LightClientHeader", preset),
        store.previous_max_active_participants.to_bytes(8, "big"),
        store.current_max_active_participants.to_bytes(8, "big"),
    ])


def _decode_store(data: bytes, preset: str) -> sp.LightClientStore:
    try:
        parts = _unframe(data)
        finalized, current, next_, best, optimistic, previous, current_max = parts
        return sp.LightClientStore(
            _unpack(finalized, "LightClientHeader", preset),
            _unpack(current, "SyncCommittee", preset),
            _unpack(next_, "SyncCommittee", preset),
            _unpack(best, "LightClientUpdate", preset),
            _unpack(optimistic, "LightClientHeader", preset),
            int.from_bytes(previous, "big"), int.from_bytes(current_max, "big"))
    except LightClientStateError:
        raise
    except Exception as exc:
        raise LightClientStateError(f"persisted light-client store is damaged: {exc}") from None


# -- the light client ---------------------------------------------------------------------


def _stored_row(path: str | PathLike[str], columns: str) -> tuple[Any, ...]:
    """``columns`` of the persisted light-client row at ``path``."""
    if not os.path.exists(path):
        raise LightClientStateError(f"{path}: no light-client state (bootstrap first)")
    conn = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(f"SELECT {columns} FROM light_client WHERE id = 1").fetchone()
    except sqlite3.DatabaseError as exc:
        raise LightClientStateError(f"{path}: not a light-client database ({exc})") from None
    finally:
        conn.close()
    if row is None:
        raise LightClientStateError(f"{path}: no light-client state (bootstrap first)")
    return tuple(row)


def stored_network(path: str | PathLike[str]) -> str:
    """The network name a persisted light-client store records (to pick its config)."""
    return str(_stored_row(path, "network")[0])


class LightClient:
    """A light-client store bound to a network, a clock and (optionally) a SQLite file."""

    def __init__(self, config: NetworkConfig, store: sp.LightClientStore,
                 trusted_block_root: bytes, path: str | PathLike[str] | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.trusted_block_root = trusted_block_root
        self.clock = clock
        self.committees = CommitteeCache()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        if path is not None:
            self._conn = open_durable(path, _SCHEMA)

    # -- construction ------------------------------------------------------------------

    @classmethod
    def bootstrap(cls, config: NetworkConfig, trusted_block_root: bytes, bootstrap: Any,
                  path: str | PathLike[str] | None = None, *,
                  max_checkpoint_age: float = DEFAULT_MAX_CHECKPOINT_AGE,
                  clock: Callable[[], float] = time.time) -> LightClient:
        """Start from ``bootstrap`` for ``trusted_block_root`` (``initialize_light_client_store``)
        after the checkpoint-age check; persist it to ``path`` (replacing any earlier state)."""
        slot = bootstrap.header.beacon.slot
        age = clock() - (config.genesis_time + slot * config.seconds_per_slot)
        if age > max_checkpoint_age:
            raise StaleCheckpoint(
                "checkpoint", reason=f"trusted block at slot {slot} is {age / DAY:.1f} days "
                f"old, more than the allowed {max_checkpoint_age / DAY:.1f} days: obtain a "
                f"recent trusted block root")
        if age < -config.seconds_per_slot:
            raise StaleCheckpoint("checkpoint", reason=f"trusted block at slot {slot} is "
                                                       f"{-age:.0f} s in the future")
        store = sp.initialize_light_client_store(config, trusted_block_root, bootstrap)
        client = cls(config, store, trusted_block_root, path, clock=clock)
        client._save(replace=True)
        return client

    @classmethod
    def resume(cls, config: NetworkConfig, path: str | PathLike[str], *,
               clock: Callable[[], float] = time.time) -> LightClient:
        """Reopen the light client persisted at ``path`` (for the same network)."""
        row = _stored_row(path, "network, genesis_validators_root, trusted_block_root, store")
        network, root, trusted, data = row
        if bytes(root) != config.genesis_validators_root:
            raise LightClientStateError(
                f"{path}: state of network {network} (genesis validators root 0x"
                f"{bytes(root).hex()[:12]}..), not {config.name}")
        store = _decode_store(bytes(data), config.preset.name)
        return cls(config, store, bytes(trusted), path, clock=clock)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> LightClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the protocol ------------------------------------------------------------------

    @property
    def current_slot(self) -> int:
        return self.config.current_slot(self.clock())

    def process_update(self, update: Any) -> None:
        """Validate and process a ``LightClientUpdate``; persist the result. Raises
        :class:`~node.chain.beacon.sync_protocol.UpdateRejected` and leaves the store as it
        was when the update is refused."""
        self._apply(lambda s: sp.process_light_client_update(self.config, s, update,
                                                             self.current_slot,
                                                             self.committees))

    def process_finality_update(self, update: Any) -> None:
        self._apply(lambda s: sp.process_light_client_finality_update(
            self.config, s, update, self.current_slot, self.committees))

    def process_optimistic_update(self, update: Any) -> None:
        self._apply(lambda s: sp.process_light_client_optimistic_update(
            self.config, s, update, self.current_slot, self.committees))

    def force_update(self) -> bool:
        """Apply the best valid update if the update timeout elapsed; True if it did."""
        forced = [False]

        def run(store: sp.LightClientStore) -> None:
            forced[0] = sp.process_light_client_store_force_update(self.config, store,
                                                                   self.current_slot)
        self._apply(run)
        return forced[0]

    def _apply(self, step: Callable[[sp.LightClientStore], None]) -> None:
        with self._lock:
            work = dataclasses.replace(self.store)  # a refused update leaves no trace
            step(work)
            self.store = work
        self._save()

    # -- what it proves ----------------------------------------------------------------

    @property
    def finalized_execution(self) -> ExecutionHead | None:
        return execution_head(self.store.finalized_header)

    @property
    def optimistic_execution(self) -> ExecutionHead | None:
        return execution_head(self.store.optimistic_header)

    @property
    def finalized_period(self) -> int:
        return self.config.sync_committee_period_at_slot(self.store.finalized_header.beacon.slot)

    @property
    def next_sync_committee_known(self) -> bool:
        return sp.is_next_sync_committee_known(self.store)

    # -- persistence -------------------------------------------------------------------

    def _save(self, *, replace: bool = False) -> None:
        if self._conn is None:
            return
        data = _encode_store(self.store, self.config.preset.name)
        with write_transaction(self._conn, self._lock):
            if replace:
                self._conn.execute("DELETE FROM light_client")
            self._conn.execute(
                "INSERT OR REPLACE INTO light_client VALUES (1, ?, ?, ?, ?)",
                (self.config.name, self.config.genesis_validators_root,
                 self.trusted_block_root, data))
