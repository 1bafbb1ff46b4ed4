"""Network configuration: the fork schedule, genesis and clock of one beacon chain.

A light client needs four facts about the chain it follows, and all of them are
configuration, not data it can verify (consensus-specs ``configs/*.yaml``):

* the **fork schedule** -- each fork's 4-byte version and activation epoch. The version in
  force at a slot decides which containers describe it and enters every signing domain
  (phase0 ``compute_fork_version``, extended by each fork's ``fork.md``);
* the **genesis validators root**, which binds domains and fork digests to one chain
  (phase0 ``compute_fork_data_root``);
* **genesis time and slot length**, to know the current slot (phase0 "Time parameters";
  newer configs give ``SLOT_DURATION_MS`` instead of ``SECONDS_PER_SLOT``);
* the **blob schedule** (Fulu ``beacon-chain.md`` "Blob schedule", EIP-7892), which from
  Fulu on is mixed into the fork digest: one fork can have several digests, one per
  blob-parameter-only (BPO) step (Fulu ``compute_fork_digest``).

:class:`NetworkConfig` holds them, :data:`MAINNET`, :data:`SEPOLIA` and :data:`HOODI` are
built in, :meth:`NetworkConfig.from_yaml` reads a consensus-specs ``config.yaml`` and
:func:`network` picks one by name or path::

    cfg = network("mainnet")
    cfg.fork_at_slot(13_000_000).name              # 'electra'
    cfg.fork_digest("deneb").hex()                 # '6a95a1a9'
    cfg.fork_by_digest(bytes.fromhex("8c9f62fe"))  # Fork('fulu', ...) (BPO2)

Every failure is a :class:`ConfigError` (a :class:`~node.chain.errors.MalformedInputError`)
with a one-line message; :class:`UnknownForkDigestError` names a digest no fork of the
network has.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from node.chain.beacon.containers import (
    MAINNET as MAINNET_PRESET,
)
from node.chain.beacon.containers import (
    PRESETS,
    Preset,
    compute_fork_data_root,
)
from node.chain.errors import MalformedInputError

FAR_FUTURE_EPOCH = 2**64 - 1
"""An unscheduled fork's epoch (phase0 "Constants")."""

FORK_NAMES: tuple[str, ...] = (
    "phase0", "altair", "bellatrix", "capella", "deneb", "electra", "fulu", "gloas")
"""Every fork this module can schedule, oldest first. ``gloas`` is here because Sepolia
activated it (epoch 353024); whether its light-client data can be read is the containers'
business (:data:`node.chain.beacon.containers.FORKS`)."""

BLOB_DIGEST_FORK = "fulu"
"""From this fork on, fork digests are masked with the blob parameters (EIP-7892)."""


class ConfigError(MalformedInputError):
    """A network configuration is malformed, inconsistent or unknown."""


class UnknownForkDigestError(ConfigError):
    """A fork digest that no fork of the network has (another chain, or a lie)."""

    def __init__(self, digest: bytes, network: str) -> None:
        self.digest = bytes(digest)
        super().__init__(f"fork digest 0x{self.digest.hex()} is not one of {network}'s forks")


@dataclass(frozen=True)
class Fork:
    """One fork of a network's schedule (``<NAME>_FORK_VERSION`` / ``_FORK_EPOCH``)."""

    name: str  # "phase0", "altair", ... (FORK_NAMES)
    version: bytes  # 4-byte fork version, part of every signing domain and fork digest
    epoch: int  # activation epoch; FAR_FUTURE_EPOCH if unscheduled

    @property
    def scheduled(self) -> bool:
        """Whether the fork has an activation epoch."""
        return self.epoch != FAR_FUTURE_EPOCH


@dataclass(frozen=True)
class BlobParameters:
    """One entry of the blob schedule (Fulu ``BlobParameters``, EIP-7892)."""

    epoch: int  # first epoch the limit applies
    max_blobs_per_block: int


@dataclass(frozen=True)
class NetworkConfig:
    """What a light client must be told about a beacon chain (see the module docstring).

    ``blob_schedule`` and ``max_blobs_per_block_electra`` only matter from Fulu on, where
    they enter the fork digest (``get_blob_parameters`` falls back to Electra's limit at
    the Electra epoch when no entry applies).
    """

    name: str
    preset: Preset  # containers.MAINNET / MINIMAL
    genesis_validators_root: bytes  # 32 bytes
    genesis_time: int  # unix seconds of slot 0
    seconds_per_slot: int
    forks: tuple[Fork, ...]  # FORK_NAMES order, phase0 first, epochs non-decreasing
    blob_schedule: tuple[BlobParameters, ...] = ()  # ascending epochs
    max_blobs_per_block_electra: int = 9

    def __post_init__(self) -> None:
        _check_bytes(self.genesis_validators_root, 32, "genesis_validators_root")
        if not isinstance(self.preset, Preset):
            raise ConfigError(f"{self.name}: preset must be a Preset, not {self.preset!r}")
        if not isinstance(self.genesis_time, int) or self.genesis_time < 0:
            raise ConfigError(f"{self.name}: genesis_time must be a non-negative integer")
        if not isinstance(self.seconds_per_slot, int) or self.seconds_per_slot <= 0:
            raise ConfigError(f"{self.name}: seconds_per_slot must be a positive integer")
        _check_forks(self.name, self.forks)
        epochs = [entry.epoch for entry in self.blob_schedule]
        if epochs != sorted(set(epochs)):
            raise ConfigError(f"{self.name}: blob schedule epochs must be distinct and "
                              f"ascending, got {epochs}")

    # -- fork schedule ---------------------------------------------------------------------

    def fork(self, name: str) -> Fork:
        """The fork called ``name``; :class:`ConfigError` if the network has none."""
        for fork in self.forks:
            if fork.name == name:
                return fork
        raise ConfigError(f"{self.name} has no fork {name!r} "
                          f"(it has {', '.join(f.name for f in self.forks)})")

    def fork_at_epoch(self, epoch: int) -> Fork:
        """The fork in force at ``epoch``: the newest whose activation epoch is at or before
        it (phase0 ``compute_fork_version``, as extended by each fork's ``fork.md``)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"epoch must be a non-negative integer, got {epoch!r}")
        for fork in reversed(self.forks):
            if epoch >= fork.epoch:
                return fork
        return self.forks[0]  # unreachable: phase0 starts at epoch 0

    def fork_at_slot(self, slot: int) -> Fork:
        """The fork in force at ``slot`` (``compute_epoch_at_slot`` then
        :meth:`fork_at_epoch`)."""
        return self.fork_at_epoch(self.epoch_at_slot(slot))

    def epoch_at_slot(self, slot: int) -> int:
        """phase0 ``compute_epoch_at_slot``."""
        if not isinstance(slot, int) or slot < 0:
            raise ConfigError(f"slot must be a non-negative integer, got {slot!r}")
        return slot // self.preset.slots_per_epoch

    def sync_committee_period_at_slot(self, slot: int) -> int:
        """altair ``compute_sync_committee_period_at_slot``."""
        return self.epoch_at_slot(slot) // self.preset.epochs_per_sync_committee_period

    # -- fork digests ----------------------------------------------------------------------

    def blob_parameters(self, epoch: int) -> BlobParameters:
        """Fulu ``get_blob_parameters``: the newest blob-schedule entry at or before
        ``epoch``, else Electra's limit from the Electra epoch."""
        for entry in reversed(self.blob_schedule):
            if epoch >= entry.epoch:
                return entry
        electra = self._fork_or_none("electra")
        electra_epoch = electra.epoch if electra is not None else FAR_FUTURE_EPOCH
        return BlobParameters(electra_epoch, self.max_blobs_per_block_electra)

    def fork_digest_at_epoch(self, epoch: int) -> bytes:
        """The fork digest in force at ``epoch`` (Fulu ``compute_fork_digest``): the first
        four bytes of the fork data root, from Fulu on XOR-ed with
        ``sha256(uint64(blob epoch) || uint64(max blobs))`` of the blob parameters then."""
        fork = self.fork_at_epoch(epoch)
        if self._masked(fork):
            return self._digest_in(fork, epoch)
        return compute_fork_data_root(fork.version, self.genesis_validators_root)[:4]

    def fork_digest(self, fork: Fork | str) -> bytes:
        """The fork digest of ``fork`` (a :class:`Fork` of this network or its name).

        Before Fulu this is phase0's ``compute_fork_digest(version, genesis_validators_root)``,
        the same for the whole fork. From Fulu on a fork has one digest per blob-parameter
        step (EIP-7892); this returns the one at the fork's activation epoch -- use
        :meth:`fork_digest_at_epoch` for a given epoch and :meth:`fork_digests` for all.
        """
        fork = self._own(fork)
        if self._masked(fork):
            return self.fork_digest_at_epoch(fork.epoch)
        return compute_fork_data_root(fork.version, self.genesis_validators_root)[:4]

    def fork_digests(self) -> dict[bytes, Fork]:
        """Every digest the network's forks can carry, mapped to its fork: one per fork
        before Fulu, and from Fulu on one per blob-schedule step while the fork is in force
        (unscheduled forks included, with their digest at the end of the schedule)."""
        digests: dict[bytes, Fork] = {}
        for index, fork in enumerate(self.forks):
            if not self._masked(fork):
                digests[self.fork_digest(fork)] = fork
                continue
            end = self.forks[index + 1].epoch if index + 1 < len(self.forks) else None
            epochs = {fork.epoch} | {entry.epoch for entry in self.blob_schedule
                                     if entry.epoch > fork.epoch
                                     and (end is None or entry.epoch < end)}
            for epoch in sorted(epochs):
                digests.setdefault(self._digest_in(fork, epoch), fork)
        return digests

    def fork_by_digest(self, digest: bytes) -> Fork:
        """The fork whose digest (at some epoch) is ``digest``;
        :class:`UnknownForkDigestError` naming the digest if none is."""
        if not isinstance(digest, bytes | bytearray) or len(digest) != 4:
            raise ConfigError(f"a fork digest is 4 bytes, got {digest!r}")
        fork = self.fork_digests().get(bytes(digest))
        if fork is None:
            raise UnknownForkDigestError(bytes(digest), self.name)
        return fork

    # -- clock and variants ----------------------------------------------------------------

    def current_slot(self, now: float) -> int:
        """The slot at unix time ``now`` (``(now - genesis_time) // SECONDS_PER_SLOT``);
        :class:`ConfigError` before genesis."""
        if now < self.genesis_time:
            raise ConfigError(f"clock {now:.0f} is before {self.name}'s genesis "
                              f"{self.genesis_time}: check the system time")
        return int((now - self.genesis_time) // self.seconds_per_slot)

    def slot_start(self, slot: int) -> int:
        """Unix time at which ``slot`` starts."""
        return self.genesis_time + slot * self.seconds_per_slot

    def with_genesis_validators_root(self, root: bytes) -> NetworkConfig:
        """This configuration bound to another genesis validators root."""
        return dataclasses.replace(self, genesis_validators_root=bytes(root))

    @classmethod
    def from_yaml(cls, text: str, *, name: str | None = None,
                  genesis_validators_root: bytes = bytes(32),
                  genesis_time: int | None = None) -> NetworkConfig:
        """Read a consensus-specs ``config.yaml``.

        Uses ``PRESET_BASE``, ``CONFIG_NAME`` (unless ``name`` is given),
        ``GENESIS_FORK_VERSION``, ``<FORK>_FORK_VERSION``/``_FORK_EPOCH`` for every fork of
        :data:`FORK_NAMES` (absent later forks are left out; a fork unknown here but
        scheduled is refused), ``SECONDS_PER_SLOT`` or ``SLOT_DURATION_MS``,
        ``BLOB_SCHEDULE`` and ``MAX_BLOBS_PER_BLOCK_ELECTRA`` (required once Fulu is
        scheduled). A config file does not hold the genesis validators root, nor the exact
        genesis time: that is ``genesis_time`` if given, else a non-standard
        ``GENESIS_TIME`` key, else ``MIN_GENESIS_TIME + GENESIS_DELAY`` -- the testnet
        convention (exact for Sepolia and Hoodi; mainnet's genesis came 23 s after its
        ``MIN_GENESIS_TIME`` with no delay, so pass it).
        """
        return _config_from_yaml(text, name=name, genesis_validators_root=genesis_validators_root,
                                 genesis_time=genesis_time)

    # -- helpers ---------------------------------------------------------------------------

    def _fork_or_none(self, name: str) -> Fork | None:
        return next((fork for fork in self.forks if fork.name == name), None)

    def _own(self, fork: Fork | str) -> Fork:
        if isinstance(fork, str):
            return self.fork(fork)
        if fork not in self.forks:
            raise ConfigError(f"{fork.name} (0x{fork.version.hex()}) is not a fork of {self.name}")
        return fork

    def _masked(self, fork: Fork) -> bool:
        return FORK_NAMES.index(fork.name) >= FORK_NAMES.index(BLOB_DIGEST_FORK)

    def _digest_in(self, fork: Fork, epoch: int) -> bytes:
        base = compute_fork_data_root(fork.version, self.genesis_validators_root)
        params = self.blob_parameters(epoch)
        mask = hashlib.sha256(params.epoch.to_bytes(8, "little")
                              + params.max_blobs_per_block.to_bytes(8, "little")).digest()
        return bytes(a ^ b for a, b in zip(base[:4], mask[:4], strict=True))


def _check_bytes(value: Any, length: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        raise ConfigError(f"{what} must be {length} bytes, got {value!r}")


def _check_forks(network: str, forks: tuple[Fork, ...]) -> None:
    if not isinstance(forks, tuple) or not forks:
        raise ConfigError(f"{network}: forks must be a non-empty tuple")
    names = [fork.name for fork in forks]
    if names != list(FORK_NAMES[:len(names)]):
        raise ConfigError(f"{network}: forks must be {', '.join(FORK_NAMES)} in this order "
                          f"with none skipped, got {', '.join(names)}")
    if forks[0].epoch != 0:
        raise ConfigError(f"{network}: phase0 must start at epoch 0, not {forks[0].epoch}")
    versions: set[bytes] = set()
    for previous, fork in zip((None, *forks), forks, strict=False):
        _check_bytes(fork.version, 4, f"{network} {fork.name} fork version")
        if fork.version in versions:
            raise ConfigError(f"{network}: {fork.name} reuses fork version 0x{fork.version.hex()}")
        versions.add(fork.version)
        if not isinstance(fork.epoch, int) or not 0 <= fork.epoch <= FAR_FUTURE_EPOCH:
            raise ConfigError(f"{network}: {fork.name} epoch must be a uint64, got {fork.epoch!r}")
        if previous is not None and fork.epoch < previous.epoch:
            raise ConfigError(f"{network}: {fork.name} (epoch {fork.epoch}) cannot activate "
                              f"before {previous.name} (epoch {previous.epoch})")


# -- config.yaml ----------------------------------------------------------------------------

_FORK_KEY = re.compile(r"([A-Z0-9]+)_FORK_(?:EPOCH|VERSION)")
_IGNORED_FORK_KEYS = {"GENESIS", "TERMINAL_BLOCK_HASH_ACTIVATION"}


def _uint(raw: dict[str, Any], key: str, *, bits: int = 64) -> int:
    value = raw.get(key)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]+", value.strip()):
        raise ConfigError(f"config.yaml: {key} must be a decimal integer, got {value!r}")
    number = int(value)
    if number >= 2**bits:
        raise ConfigError(f"config.yaml: {key} = {number} does not fit in uint{bits}")
    return number


def _version(raw: dict[str, Any], key: str) -> bytes:
    value = raw.get(key)
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{8}", value.strip()):
        raise ConfigError(f"config.yaml: {key} must be 4 bytes of 0x-hex, got {value!r}")
    return bytes.fromhex(value.strip()[2:])


def _load_mapping(text: str) -> dict[str, Any]:
    try:
        # BaseLoader builds no objects and keeps every scalar a string: versions keep
        # their width, integers their digits (YAML 1.1 reads 0x00000001 as 1, 0777 as 511).
        raw = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"config.yaml is not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError("config.yaml must be a mapping of KEY: value")
    return raw


def _forks_from(raw: dict[str, Any]) -> tuple[Fork, ...]:
    known = {name.upper() for name in FORK_NAMES}
    for key in raw:
        match = _FORK_KEY.fullmatch(key)
        if not match or match.group(1) in known | _IGNORED_FORK_KEYS:
            continue
        if key.endswith("_EPOCH") and _uint(raw, key) != FAR_FUTURE_EPOCH:
            raise ConfigError(f"config.yaml schedules fork {match.group(1)} at epoch "
                              f"{_uint(raw, key)}, which this light client does not know")
    forks = [Fork("phase0", _version(raw, "GENESIS_FORK_VERSION"), 0)]
    for name in FORK_NAMES[1:]:
        version_key, epoch_key = f"{name.upper()}_FORK_VERSION", f"{name.upper()}_FORK_EPOCH"
        present = [key for key in (version_key, epoch_key) if key in raw]
        if not present:
            missing_later = [n for n in FORK_NAMES[FORK_NAMES.index(name) + 1:]
                             if f"{n.upper()}_FORK_EPOCH" in raw]
            if missing_later:
                raise ConfigError(f"config.yaml has {missing_later[0].upper()}_FORK_EPOCH "
                                  f"but no {epoch_key}")
            break
        if len(present) == 1:
            other = epoch_key if present[0] == version_key else version_key
            raise ConfigError(f"config.yaml has {present[0]} but no {other}")
        forks.append(Fork(name, _version(raw, version_key), _uint(raw, epoch_key)))
    return tuple(forks)


def _blob_schedule_from(raw: dict[str, Any]) -> tuple[BlobParameters, ...]:
    entries = raw.get("BLOB_SCHEDULE", [])
    if entries == "":  # `BLOB_SCHEDULE:` with nothing after it
        entries = []
    if not isinstance(entries, list):
        raise ConfigError("config.yaml: BLOB_SCHEDULE must be a list of {EPOCH, "
                          "MAX_BLOBS_PER_BLOCK}")
    schedule = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"config.yaml: BLOB_SCHEDULE[{index}] must be a mapping")
        where = {k: entry.get(k) for k in ("EPOCH", "MAX_BLOBS_PER_BLOCK")}
        try:
            schedule.append(BlobParameters(_uint(where, "EPOCH"),
                                           _uint(where, "MAX_BLOBS_PER_BLOCK")))
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("config.yaml: ",
                                               f"config.yaml: BLOB_SCHEDULE[{index}].")) from None
    return tuple(sorted(schedule, key=lambda entry: entry.epoch))


def _seconds_per_slot(raw: dict[str, Any]) -> int:
    seconds = _uint(raw, "SECONDS_PER_SLOT") if "SECONDS_PER_SLOT" in raw else None
    millis = _uint(raw, "SLOT_DURATION_MS") if "SLOT_DURATION_MS" in raw else None
    if millis is not None:
        if millis % 1000:
            raise ConfigError(f"config.yaml: SLOT_DURATION_MS = {millis} is not a whole "
                              f"number of seconds, which this client needs")
        if seconds is not None and seconds * 1000 != millis:
            raise ConfigError(f"config.yaml: SECONDS_PER_SLOT = {seconds} contradicts "
                              f"SLOT_DURATION_MS = {millis}")
        seconds = millis // 1000
    if seconds is None:
        raise ConfigError("config.yaml has neither SECONDS_PER_SLOT nor SLOT_DURATION_MS")
    return seconds


def _config_from_yaml(text: str, *, name: str | None, genesis_validators_root: bytes,
                      genesis_time: int | None) -> NetworkConfig:
    raw = _load_mapping(text)
    preset_name = raw.get("PRESET_BASE")
    if preset_name not in PRESETS:
        raise ConfigError(f"config.yaml: PRESET_BASE must be one of {', '.join(PRESETS)}, "
                          f"got {preset_name!r}")
    forks = _forks_from(raw)
    fulu = next((fork for fork in forks if fork.name == BLOB_DIGEST_FORK), None)
    if "MAX_BLOBS_PER_BLOCK_ELECTRA" in raw:
        max_blobs_electra = _uint(raw, "MAX_BLOBS_PER_BLOCK_ELECTRA")
    elif fulu is not None and fulu.scheduled:
        raise ConfigError("config.yaml schedules Fulu but has no MAX_BLOBS_PER_BLOCK_ELECTRA "
                          "(needed for its fork digests)")
    else:
        max_blobs_electra = 9
    if genesis_time is None:
        if "GENESIS_TIME" in raw:
            genesis_time = _uint(raw, "GENESIS_TIME")
        else:
            genesis_time = _uint(raw, "MIN_GENESIS_TIME") + _uint(raw, "GENESIS_DELAY")
    config_name = raw.get("CONFIG_NAME")
    return NetworkConfig(
        name=name or (config_name if isinstance(config_name, str) and config_name else "custom"),
        preset=PRESETS[preset_name],
        genesis_validators_root=bytes(genesis_validators_root),
        genesis_time=genesis_time,
        seconds_per_slot=_seconds_per_slot(raw),
        forks=forks,
        blob_schedule=_blob_schedule_from(raw),
        max_blobs_per_block_electra=max_blobs_electra,
    )


# -- built-in networks ----------------------------------------------------------------------
#
# Values checked against at least two independent public copies each (November 2026):
#
# mainnet -- ethereum/consensus-specs configs/mainnet.yaml (fork versions/epochs incl.
#   FULU_FORK_EPOCH 411392 and BLOB_SCHEDULE 412672/15, 419072/21; GLOAS unscheduled);
#   Lodestar packages/config chainConfig/configs/mainnet.ts, Lighthouse's and Grandine's
#   built-in chain specs (same epochs/versions); genesis root and time 1606824023 from
#   Nimbus' genesis params, Helios' mainnet config and Prysm's genesis table. Digests pinned
#   by Nethermind's fork-digest tests (b5303f2a .. 6a95a1a9 deneb, ad532ceb electra,
#   cc2c5cdb fulu, cb0d1acc BPO1, 8c9f62fe BPO2) are re-derived in tests/test_beacon_config.py.
# sepolia -- eth-clients/sepolia metadata/config.yaml (incl. FULU 272640, BLOB_SCHEDULE
#   274176/15, 275712/21, GLOAS 0x90000076 at 353024 = 2026-10-06), Lodestar
#   chainConfig/networks/sepolia.ts and the Lodestar/Teku PRs scheduling Gloas (ethereum/pm
#   #2205); genesis root from Nimbus/Helios/Prysm, genesis time 1655733600 =
#   MIN_GENESIS_TIME 1655647200 + GENESIS_DELAY 86400 (Helios, Prysm agree).
# hoodi -- eth-clients/hoodi metadata/config.yaml and Lodestar/Lighthouse/Teku built-in hoodi
#   configs (versions 0xN0000910, ELECTRA 2048), FULU 50688 and BLOB_SCHEDULE 52480/15,
#   54016/21 from two client chain specs and the Hoodi fork table; no Gloas epoch yet;
#   genesis root 212f13fc.. (Nimbus, Helios, Nethermind, eth-clients/hoodi
#   genesis_validators_root.txt at 2b03cffb), genesis time 1742213400 = 1742212800 + 600.


def _forks(*entries: tuple[str, str, int]) -> tuple[Fork, ...]:
    return tuple(Fork(name, bytes.fromhex(version), epoch) for name, version, epoch in entries)


def _blobs(*entries: tuple[int, int]) -> tuple[BlobParameters, ...]:
    return tuple(BlobParameters(epoch, limit) for epoch, limit in entries)


MAINNET = NetworkConfig(
    name="mainnet",
    preset=MAINNET_PRESET,
    genesis_validators_root=bytes.fromhex(
        "4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"),
    genesis_time=1606824023,
    seconds_per_slot=12,
    forks=_forks(("phase0", "00000000", 0), ("altair", "01000000", 74240),
                 ("bellatrix", "02000000", 144896), ("capella", "03000000", 194048),
                 ("deneb", "04000000", 269568), ("electra", "05000000", 364032),
                 ("fulu", "06000000", 411392), ("gloas", "07000000", FAR_FUTURE_EPOCH)),
    blob_schedule=_blobs((412672, 15), (419072, 21)),
    max_blobs_per_block_electra=9,
)

SEPOLIA = NetworkConfig(
    name="sepolia",
    preset=MAINNET_PRESET,
    genesis_validators_root=bytes.fromhex(
        "d8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078"),
    genesis_time=1655733600,
    seconds_per_slot=12,
    forks=_forks(("phase0", "90000069", 0), ("altair", "90000070", 50),
                 ("bellatrix", "90000071", 100), ("capella", "90000072", 56832),
                 ("deneb", "90000073", 132608), ("electra", "90000074", 222464),
                 ("fulu", "90000075", 272640), ("gloas", "90000076", 353024)),
    blob_schedule=_blobs((274176, 15), (275712, 21)),
    max_blobs_per_block_electra=9,
)

HOODI = NetworkConfig(
    name="hoodi",
    preset=MAINNET_PRESET,
    genesis_validators_root=bytes.fromhex(
        "212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"),
    genesis_time=1742213400,
    seconds_per_slot=12,
    forks=_forks(("phase0", "10000910", 0), ("altair", "20000910", 0),
                 ("bellatrix", "30000910", 0), ("capella", "40000910", 0),
                 ("deneb", "50000910", 0), ("electra", "60000910", 2048),
                 ("fulu", "70000910", 50688), ("gloas", "80000910", FAR_FUTURE_EPOCH)),
    blob_schedule=_blobs((52480, 15), (54016, 21)),
    max_blobs_per_block_electra=9,
)

NETWORKS: dict[str, NetworkConfig] = {cfg.name: cfg for cfg in (MAINNET, SEPOLIA, HOODI)}


def network(name: str) -> NetworkConfig:
    """A built-in network (``"mainnet"``, ``"sepolia"``, ``"hoodi"``) or a custom one from a
    ``config.yaml`` path (or a directory holding one, as in the ``eth-clients/*/metadata``
    layout). A custom network's genesis validators root is read from the
    ``genesis_validators_root.txt`` beside it, which must be there: without the root no
    signature domain can be computed."""
    if name in NETWORKS:
        return NETWORKS[name]
    path = Path(name)
    if path.is_dir():
        path = path / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown network {name!r}: use {', '.join(NETWORKS)} or the path "
                          f"of a config.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        config = NetworkConfig.from_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    root_file = path.parent / "genesis_validators_root.txt"
    if not root_file.is_file():
        raise ConfigError(f"custom network {path}: no {root_file.name} beside it; every "
                          f"signature domain depends on the genesis validators root, so "
                          f"write the network's 0x-hex root into {root_file}")
    hex_root = root_file.read_text(encoding="utf-8").strip().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", hex_root):
        raise ConfigError(f"{root_file} must hold a 32-byte 0x-hex root")
    return config.with_genesis_validators_root(bytes.fromhex(hex_root))
