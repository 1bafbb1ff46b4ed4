"""Fork schedules: which consensus rules apply to a header, by block number and timestamp.

A chain's rules change at *forks*. Until the Merge they activate at a block number
(``homesteadBlock`` .. ``grayGlacierBlock`` in a geth ``genesis.json``); from Shanghai on at
a timestamp (``shanghaiTime``, ``cancunTime``, ...; EIP-6953 explains the switch). A
:class:`ChainConfig` lists both kinds, the Merge (EIP-3675: the terminal total difficulty,
and the first proof-of-stake block when it is known), and the blob schedule of every
timestamp fork that changes the blob parameters:

==========  =============================  ============================================
fork        header fields it adds          blob parameters (target, max, fraction)
==========  =============================  ============================================
london      ``baseFeePerGas`` (EIP-1559)   --
shanghai    ``withdrawalsRoot`` (EIP-4895)  --
cancun      ``blobGasUsed``,               ``blobSchedule.cancun`` (EIP-4844, EIP-7840)
            ``excessBlobGas`` (EIP-4844),
            ``parentBeaconBlockRoot``
            (EIP-4788)
prague      ``requestsHash`` (EIP-7685)    ``blobSchedule.prague`` (EIP-7691)
osaka       --                             inherited, or ``blobSchedule.osaka``;
                                           the reserve price of EIP-7918 starts here
bpo1..bpoN  --                             ``blobSchedule.bpoN`` (EIP-7892)
==========  =============================  ============================================

A schedule is only known as far as the config lists it. Forks this module has no rules for
(``amsterdamTime`` and any other unknown ``*Time`` key) are kept, so that the rules stop
where they start; and a built-in config carries ``known_until``, the date of the newest
source its values were checked against, after which a fork may have been scheduled that it
does not list. :mod:`node.chain.header_rules` reports the rules that depend on the schedule
as *not checked* beyond that point, never checks them with stale parameters.

Configs come from the built-in networks (:data:`MAINNET`, :data:`SEPOLIA`, :data:`HOODI`),
from a geth ``genesis.json`` (:func:`chain_config_from_genesis`) or from a hive
``forkenv.json`` (:func:`chain_config_from_forkenv`); :func:`load_chain_config` takes a
network name or a path and finds out which.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from node.chain.block import GAS_PER_BLOB
from node.chain.errors import MalformedInputError

__all__ = [
    "BLOCK_FORKS",
    "HOODI",
    "MAINNET",
    "NETWORKS",
    "SEPOLIA",
    "BlobSchedule",
    "ChainConfig",
    "TimeFork",
    "chain_config_from_forkenv",
    "chain_config_from_genesis",
    "load_chain_config",
]

BLOCK_FORKS: tuple[str, ...] = (
    "homestead", "dao_fork", "tangerine_whistle", "spurious_dragon", "byzantium",
    "constantinople", "petersburg", "istanbul", "muir_glacier", "berlin", "london",
    "arrow_glacier", "gray_glacier")
"""The block-number forks, in activation order (execution-specs ``forks/`` names)."""

SHAPES: tuple[str, ...] = ("frontier", "london", "shanghai", "cancun", "prague", "amsterdam")
"""Header shapes in order: each adds trailing fields to the one before
(:mod:`node.chain.header`). A header's *shape rank* is its index here."""

_TIME_FORK_SHAPE = {"shanghai": 2, "cancun": 3, "prague": 4, "amsterdam": 5}
_IMPLEMENTED = re.compile(r"shanghai|cancun|prague|osaka|bpo[1-9][0-9]*")
"""The timestamp forks whose header rules :mod:`node.chain.header_rules` implements."""
_BLOBS_REQUIRED = re.compile(r"cancun|prague|bpo[1-9][0-9]*")
"""Timestamp forks that must set blob parameters (geth ``CheckConfigForkOrder``)."""
_CANONICAL_TIME_ORDER = ("shanghai", "cancun", "prague", "osaka")


@dataclass(frozen=True)
class BlobSchedule:
    """One ``blobSchedule`` entry (EIP-7840): the blob parameters from its fork on."""

    target: int  # blobs per block the excess-gas update aims at (EIP-4844, EIP-7691)
    max: int  # blobs a block may carry
    base_fee_update_fraction: int  # denominator of the blob base fee exponent (EIP-4844)

    def __post_init__(self) -> None:
        for name in ("target", "max", "base_fee_update_fraction"):
            if type(getattr(self, name)) is not int:
                raise TypeError(f"BlobSchedule.{name} must be an int")
        if not 0 <= self.target <= self.max or self.max < 1 or self.base_fee_update_fraction < 1:
            raise MalformedInputError(
                f"blob schedule needs 0 <= target <= max, max >= 1 and a positive "
                f"baseFeeUpdateFraction, got target {self.target}, max {self.max}, "
                f"baseFeeUpdateFraction {self.base_fee_update_fraction}")

    @property
    def target_blob_gas(self) -> int:
        """``GAS_PER_BLOB * target`` (EIP-7892 replaces ``TARGET_BLOB_GAS_PER_BLOCK`` with it)."""
        return GAS_PER_BLOB * self.target

    @property
    def max_blob_gas(self) -> int:
        """``GAS_PER_BLOB * max``, the most ``blobGasUsed`` a block may declare."""
        return GAS_PER_BLOB * self.max

    def __str__(self) -> str:
        return (f"target {self.target}, max {self.max}, "
                f"baseFeeUpdateFraction {self.base_fee_update_fraction}")


@dataclass(frozen=True)
class TimeFork:
    """A fork that activates at a timestamp (the first block with ``timestamp >= time``)."""

    name: str  # "shanghai", "cancun", "prague", "osaka", "bpo1", ..., "amsterdam", ...
    time: int  # unix seconds
    blobs: BlobSchedule | None = None  # the blob parameters it sets; None: inherited

    @property
    def implemented(self) -> bool:
        """Whether :mod:`node.chain.header_rules` knows this fork's header rules."""
        return _IMPLEMENTED.fullmatch(self.name) is not None


@dataclass(frozen=True)
class Era:
    """The rules in force between two consecutive timestamp forks (a derived view)."""

    fork: str  # the newest timestamp fork active ("" before the first one)
    start: int  # its activation time
    shape: int  # the header shape rank its implemented timestamp forks require (SHAPES index)
    blobs: BlobSchedule | None  # blob parameters in force (None before Cancun)
    reserve_price: bool  # EIP-7918 active (Osaka and later)
    implemented: bool  # False from the first fork the rules do not implement on


@dataclass(frozen=True)
class ChainConfig:
    """A chain's fork schedule, as far as it is known.

    ``merge_block`` is a block from which every block is proof-of-stake (EIP-3675): the
    first proof-of-stake block where it is known, else a later bound such as geth's
    ``mergeNetsplitBlock``; blocks before it may still be post-Merge (the Merge happened at
    ``terminal_total_difficulty``, which a header alone does not show). ``known_until`` is
    the last timestamp up to which the schedule is known to be complete (a built-in config:
    the date of its sources); ``None`` takes the listed schedule as complete, as a genesis
    or forkenv file states it. Either way, forks after the last one listed are unknown.
    """

    chain_id: int
    name: str
    block_forks: tuple[tuple[str, int], ...]  # (fork in BLOCK_FORKS, first block), in order
    time_forks: tuple[TimeFork, ...]  # in activation order
    terminal_total_difficulty: int | None = None
    merge_block: int | None = None
    known_until: int | None = None
    clique: bool = False  # proof-of-authority before the Merge (EIP-225), not ethash
    quirks: frozenset[str] = frozenset()
    """Known, named deviations of a devnet client from the spec that the rules accept for
    this chain only (see :data:`QUIRKS`)."""

    def __post_init__(self) -> None:
        if type(self.chain_id) is not int or self.chain_id < 0:
            raise TypeError("ChainConfig.chain_id must be a non-negative int")
        if not isinstance(self.name, str):
            raise TypeError("ChainConfig.name must be a str")
        if not isinstance(self.block_forks, tuple) or not isinstance(self.time_forks, tuple):
            raise TypeError("ChainConfig.block_forks and time_forks must be tuples")
        last = -1
        for entry in self.block_forks:
            if (not isinstance(entry, tuple) or len(entry) != 2 or entry[0] not in BLOCK_FORKS
                    or type(entry[1]) is not int or entry[1] < 0):
                raise TypeError(f"ChainConfig.block_forks: {entry!r} is not (fork, block)")
            order = BLOCK_FORKS.index(entry[0])
            if order <= last:
                raise MalformedInputError(f"block fork {entry[0]} is listed out of order")
            last = order
        names = set()
        for fork in self.time_forks:
            if not isinstance(fork, TimeFork) or type(fork.time) is not int or fork.time < 0:
                raise TypeError(f"ChainConfig.time_forks: {fork!r} is not a TimeFork")
            if fork.name in names:
                raise MalformedInputError(f"timestamp fork {fork.name} is listed twice")
            names.add(fork.name)
        times = [fork.time for fork in self.time_forks]
        if times != sorted(times):
            raise MalformedInputError("timestamp forks must be listed in activation order")
        unknown = set(self.quirks) - set(QUIRKS)
        if not isinstance(self.quirks, frozenset) or unknown:
            raise TypeError(f"ChainConfig.quirks must be a frozenset of {sorted(QUIRKS)}")
        for name in ("terminal_total_difficulty", "merge_block", "known_until"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise TypeError(f"ChainConfig.{name} must be None or a non-negative int")

    # -- derived views, computed once per config ---------------------------------------------

    @cached_property
    def london_block(self) -> int | None:
        """The first EIP-1559 block, or ``None`` when the config does not list London."""
        return dict(self.block_forks).get("london")

    @cached_property
    def dao_fork_block(self) -> int | None:
        """The DAO fork block of a chain that supports it (its extraData rule), else ``None``."""
        return dict(self.block_forks).get("dao_fork")

    @cached_property
    def cache(self) -> dict[Any, Any]:
        """Scratch space for values its users derive from this config (for example the rule
        reports of :mod:`node.chain.header_rules`), so each is computed once per config."""
        return {}

    @cached_property
    def merged_from(self) -> int | None:
        """A block from which the config says every block is post-Merge: ``merge_block``,
        or 0 when ``terminal_total_difficulty`` is 0 (merged at genesis)."""
        if self.terminal_total_difficulty == 0:
            return 0
        return self.merge_block

    @cached_property
    def last_fork(self) -> str:
        """The newest fork the config lists: its schedule is unknown after it."""
        if self.time_forks:
            return self.time_forks[-1].name
        return self.block_forks[-1][0] if self.block_forks else "frontier"

    @cached_property
    def listed_shapes(self) -> frozenset[int]:
        """The header shape ranks of the forks the config lists (their fields are known to
        the config: a header that shows them early breaks the schedule)."""
        ranks = {0}
        if self.london_block is not None:
            ranks.add(1)
        ranks.update(_TIME_FORK_SHAPE[f.name] for f in self.time_forks
                     if f.name in _TIME_FORK_SHAPE)
        return frozenset(ranks)

    @cached_property
    def eras(self) -> tuple[Era, ...]:
        """The rules between consecutive timestamp forks, earliest first (the first era
        starts at time 0: the block-number forks only)."""
        eras = [Era("", 0, 0, None, False, True)]
        for fork in self.time_forks:
            prev = eras[-1]
            era = Era(
                fork=fork.name,
                start=fork.time,
                shape=max(prev.shape, _TIME_FORK_SHAPE.get(fork.name, 0) if fork.implemented
                          else 0),
                blobs=fork.blobs or prev.blobs,
                reserve_price=prev.reserve_price or fork.name == "osaka",
                implemented=prev.implemented and fork.implemented,
            )
            if eras[-1].start == fork.time and len(eras) > 1:
                eras[-1] = era  # same activation time: the later fork wins
            else:
                eras.append(era)
        return tuple(eras)

    @cached_property
    def _era_starts(self) -> tuple[int, ...]:
        return tuple(era.start for era in self.eras)

    def era_at(self, timestamp: int) -> Era:
        """The timestamp-fork rules in force at ``timestamp`` (timestamp forks apply only
        once London is active: a caller checks the block number separately)."""
        return self.eras[bisect_right(self._era_starts, timestamp) - 1]

    def blob_schedule_at(self, timestamp: int) -> BlobSchedule | None:
        """The blob parameters in force at ``timestamp``, or ``None`` before Cancun or where
        the schedule is not known (after a fork the rules do not implement, or after
        ``known_until``)."""
        era = self.era_at(timestamp)
        if not era.implemented or (self.known_until is not None
                                   and timestamp > self.known_until):
            return None
        return era.blobs

    def fork_at(self, number: int, timestamp: int) -> str:
        """The name of the newest listed fork active at a block (``"frontier"`` before any)."""
        if self.london_block is not None and number >= self.london_block:
            era = self.era_at(timestamp)
            if era.fork:
                return era.fork
        if self.merged_from is not None and number >= self.merged_from:
            return "paris"
        active = [name for name, block in self.block_forks if block <= number]
        return active[-1] if active else "frontier"

    def time_of(self, fork: str) -> int | None:
        """The activation time of a listed timestamp fork, else ``None``."""
        return next((f.time for f in self.time_forks if f.name == fork), None)


# -- loaders ------------------------------------------------------------------------------

_GENESIS_BLOCK_KEYS: tuple[tuple[str, str], ...] = (
    ("homesteadBlock", "homestead"), ("daoForkBlock", "dao_fork"),
    ("eip150Block", "tangerine_whistle"), ("eip155Block", "spurious_dragon"),
    ("byzantiumBlock", "byzantium"), ("constantinopleBlock", "constantinople"),
    ("petersburgBlock", "petersburg"), ("istanbulBlock", "istanbul"),
    ("muirGlacierBlock", "muir_glacier"), ("berlinBlock", "berlin"),
    ("londonBlock", "london"), ("arrowGlacierBlock", "arrow_glacier"),
    ("grayGlacierBlock", "gray_glacier"))
"""geth ``ChainConfig`` JSON keys (``params/config.go``) of the block-number forks."""

_MERGE_BLOCK_KEYS = ("mergeNetsplitBlock", "mergeNetSplitBlock", "mergeForkBlock")
"""geth's name, besu's spelling, and geth's name before v1.10.18."""

_FORKENV_BLOCK_KEYS: tuple[tuple[str, str], ...] = (
    ("HIVE_FORK_HOMESTEAD", "homestead"), ("HIVE_FORK_DAO_BLOCK", "dao_fork"),
    ("HIVE_FORK_TANGERINE", "tangerine_whistle"), ("HIVE_FORK_SPURIOUS", "spurious_dragon"),
    ("HIVE_FORK_BYZANTIUM", "byzantium"), ("HIVE_FORK_CONSTANTINOPLE", "constantinople"),
    ("HIVE_FORK_PETERSBURG", "petersburg"), ("HIVE_FORK_ISTANBUL", "istanbul"),
    ("HIVE_FORK_MUIR_GLACIER", "muir_glacier"), ("HIVE_FORK_BERLIN", "berlin"),
    ("HIVE_FORK_LONDON", "london"), ("HIVE_FORK_ARROW_GLACIER", "arrow_glacier"),
    ("HIVE_FORK_GRAY_GLACIER", "gray_glacier"))
"""hive's fork variables (``cmd/hivechain/output_forkenv.go``, ``clients/*/mapper.jq``)."""

_UINT64 = 2**64 - 1


def _uint(value: Any, key: str, where: str, *, text: bool = False, bits: int = 64) -> int:
    """A non-negative integer: a JSON number, or (``text``) a decimal string as hive writes."""
    if text and isinstance(value, str) and value.isdecimal() and value.isascii():
        value = int(value)
    if type(value) is not int or not 0 <= value < 2**bits:
        kind = "decimal string" if text else "integer"
        try:
            shown = json.dumps(value)
        except (TypeError, ValueError):
            shown = repr(value)
        raise MalformedInputError(f"{key} must be a non-negative {kind} below 2**{bits}, "
                                  f"got {shown[:40]}", where=where)
    return value


def _blob_entry(raw: Any, key: str, where: str) -> BlobSchedule:
    if not isinstance(raw, Mapping):
        raise MalformedInputError(f"{key} must be an object with target, max and "
                                  f"baseFeeUpdateFraction", where=where)
    values = {}
    for name in ("target", "max", "baseFeeUpdateFraction"):
        if name not in raw:
            raise MalformedInputError(f"{key}.{name} is missing", where=where)
        values[name] = _uint(raw[name], f"{key}.{name}", where)
    return _blob_schedule(values["target"], values["max"], values["baseFeeUpdateFraction"],
                          key, where)


def _blob_schedule(target: int, maximum: int, fraction: int, key: str,
                   where: str) -> BlobSchedule:
    try:
        return BlobSchedule(target, maximum, fraction)
    except MalformedInputError as exc:
        raise MalformedInputError(f"{key}: {exc}", where=where) from None


def _time_order_key(name: str) -> tuple[int, int]:
    """Canonical order of timestamp forks with equal times: shanghai < cancun < prague <
    osaka < bpo1 < bpo2 < ... < anything else."""
    if name in _CANONICAL_TIME_ORDER:
        return (_CANONICAL_TIME_ORDER.index(name), 0)
    if _IMPLEMENTED.fullmatch(name):  # bpoN
        return (len(_CANONICAL_TIME_ORDER), int(name[3:]))
    return (len(_CANONICAL_TIME_ORDER) + 1, 0)


def _build(chain_id: int, name: str | None, blocks: dict[str, tuple[str, int]],
           times: dict[str, tuple[str, int]], blobs: dict[str, BlobSchedule],
           ttd: int | None, merge: int | None, clique: bool, where: str,
           blob_key: Callable[[str], str]) -> ChainConfig:
    """Check the order of the forks read by a loader and make the config. ``blocks`` and
    ``times`` map fork names to (the key they came from, value)."""
    last: tuple[str, int] | None = None
    for fork in BLOCK_FORKS:
        if fork in blocks:
            key, block = blocks[fork]
            if last is not None and block < last[1]:
                raise MalformedInputError(f"{key} {block} is before {last[0]} {last[1]}",
                                          where=where)
            last = (key, block)
    if times and "london" not in blocks:
        key = next(iter(times.values()))[0]
        raise MalformedInputError(f"{key} is set but London is not: timestamp forks need it "
                                  f"(geth IsShanghai etc. require IsLondon)", where=where)
    ordered = sorted(times, key=_time_order_key)
    previous: tuple[str, int] | None = None
    for fork in ordered:
        if not _IMPLEMENTED.fullmatch(fork):
            continue  # unknown forks: kept at their time, no order to check
        key, time = times[fork]
        if previous is not None and time < previous[1]:
            raise MalformedInputError(f"{key} {time} is before {previous[0]} {previous[1]}",
                                      where=where)
        previous = (key, time)
    bpos = sorted(int(f[3:]) for f in times if f.startswith("bpo") and _IMPLEMENTED.fullmatch(f))
    for index in bpos:
        if index > 1 and index - 1 not in bpos:
            raise MalformedInputError(f"{times[f'bpo{index}'][0]} is set but bpo{index - 1} "
                                      f"is not (EIP-7892 numbers them from 1)", where=where)
    if bpos and "osaka" not in times:
        raise MalformedInputError(f"{times['bpo1'][0]} is set but Osaka is not (EIP-7892 "
                                  f"blob-parameter-only forks follow Osaka)", where=where)
    time_forks = []
    for fork in sorted(times, key=lambda f: (times[f][1], _time_order_key(f))):
        entry = blobs.get(fork)
        if entry is None and _BLOBS_REQUIRED.fullmatch(fork):
            raise MalformedInputError(f"{times[fork][0]} is set but {blob_key(fork)} "
                                      f"(target, max, baseFeeUpdateFraction) is missing "
                                      f"(EIP-7840)", where=where)
        time_forks.append(TimeFork(fork, times[fork][1], entry))
    return ChainConfig(
        chain_id=chain_id,
        name=name if name is not None else f"chain {chain_id}",
        block_forks=tuple((f, blocks[f][1]) for f in BLOCK_FORKS if f in blocks),
        time_forks=tuple(time_forks),
        terminal_total_difficulty=ttd,
        merge_block=merge,
        clique=clique,
    )


def chain_config_from_genesis(genesis: Mapping[str, Any], name: str | None = None, *,
                              where: str = "genesis") -> ChainConfig:
    """The fork schedule of a geth ``genesis.json`` (its ``config`` object, or that object
    alone): ``chainId``, the ``*Block`` forks, ``terminalTotalDifficulty``,
    ``mergeNetsplitBlock``, the ``*Time`` forks and ``blobSchedule`` (EIP-7840; EIP-7892 for
    ``bpoN``). Numbers must be JSON integers, as geth reads them. A ``*Time`` key this module
    has no rules for (``amsterdamTime``, ...) is kept as a fork the rules stop at; an unknown
    ``*Block`` fork is refused. Raises :class:`MalformedInputError` naming the key."""
    if not isinstance(genesis, Mapping):
        raise MalformedInputError(f"expected a JSON object, got {type(genesis).__name__}",
                                  where=where)
    config = genesis.get("config", genesis)
    where = f"{where}: config" if config is not genesis else where
    if not isinstance(config, Mapping):
        raise MalformedInputError(f"config must be an object, got {type(config).__name__}",
                                  where=where)
    if "chainId" not in config:
        raise MalformedInputError("chainId is missing", where=where)
    chain_id = _uint(config["chainId"], "chainId", where, bits=256)
    blocks: dict[str, tuple[str, int]] = {}
    for key, fork in _GENESIS_BLOCK_KEYS:
        if config.get(key) is not None:
            blocks[fork] = (key, _uint(config[key], key, where))
    if (config.get("eip158Block") is not None and "spurious_dragon" in blocks
            and _uint(config["eip158Block"], "eip158Block", where) != blocks["spurious_dragon"][1]):
        raise MalformedInputError(
            f"eip158Block {config['eip158Block']} differs from eip155Block "
            f"{blocks['spurious_dragon'][1]}: both are Spurious Dragon (EIP-607) here",
            where=where)
    if "dao_fork" in blocks and config.get("daoForkSupport") is not True:
        del blocks["dao_fork"]  # geth: a chain without daoForkSupport opposes the DAO fork
    merge = None
    for key in _MERGE_BLOCK_KEYS:
        if config.get(key) is not None:
            merge = _uint(config[key], key, where)
            break
    known = {key for key, _ in _GENESIS_BLOCK_KEYS} | set(_MERGE_BLOCK_KEYS) | {"eip158Block"}
    for key in config:
        if key.endswith("Block") and key not in known:
            raise MalformedInputError(f"{key}: unknown block-number fork (its rules are not "
                                      f"known here)", where=where)
    ttd = None
    if config.get("terminalTotalDifficulty") is not None:
        ttd = _uint(config["terminalTotalDifficulty"], "terminalTotalDifficulty", where,
                    bits=256)
    times: dict[str, tuple[str, int]] = {}
    for key, value in config.items():
        if key.endswith("Time") and len(key) > 4 and value is not None:
            times[key[:-4]] = (key, _uint(value, key, where))
    raw_blobs = config.get("blobSchedule") or {}
    if not isinstance(raw_blobs, Mapping):
        raise MalformedInputError("blobSchedule must be an object of forks", where=where)
    blobs = {fork: _blob_entry(entry, f"blobSchedule.{fork}", where)
             for fork, entry in raw_blobs.items()}
    clique = isinstance(config.get("clique"), Mapping)
    return _build(chain_id, name, blocks, times, blobs, ttd, merge, clique, where,
                  lambda fork: f"blobSchedule.{fork}")


_FORKENV_TIME = re.compile(r"HIVE_([A-Z0-9_]+)_TIMESTAMP")
_FORKENV_BLOB = re.compile(r"HIVE_([A-Z0-9]+)_BLOB_(TARGET|MAX|BASE_FEE_UPDATE_FRACTION)")


def chain_config_from_forkenv(env: Mapping[str, Any], name: str | None = None, *,
                              where: str = "forkenv") -> ChainConfig:
    """The fork schedule of a hive ``forkenv.json`` (the variables hive gives a client):
    ``HIVE_CHAIN_ID``, ``HIVE_FORK_<FORK>`` block numbers, ``HIVE_MERGE_BLOCK_ID``,
    ``HIVE_TERMINAL_TOTAL_DIFFICULTY``, ``HIVE_<FORK>_TIMESTAMP`` and
    ``HIVE_<FORK>_BLOB_{TARGET,MAX,BASE_FEE_UPDATE_FRACTION}`` (decimal strings). The same
    chain gives the same :class:`ChainConfig` as :func:`chain_config_from_genesis`. Raises
    :class:`MalformedInputError` naming the key."""
    if not isinstance(env, Mapping):
        raise MalformedInputError(f"expected a JSON object, got {type(env).__name__}",
                                  where=where)
    if "HIVE_CHAIN_ID" not in env:
        raise MalformedInputError("HIVE_CHAIN_ID is missing", where=where)
    chain_id = _uint(env["HIVE_CHAIN_ID"], "HIVE_CHAIN_ID", where, text=True, bits=256)
    blocks = {fork: (key, _uint(env[key], key, where, text=True))
              for key, fork in _FORKENV_BLOCK_KEYS if key in env}
    if "dao_fork" in blocks and env.get("HIVE_FORK_DAO_VOTE") != "1":
        del blocks["dao_fork"]  # hive's geth mapper: daoForkSupport = (HIVE_FORK_DAO_VOTE == "1")
    known = {key for key, _ in _FORKENV_BLOCK_KEYS} | {"HIVE_FORK_DAO_VOTE"}
    for key in env:
        if key.startswith("HIVE_FORK_") and key not in known:
            raise MalformedInputError(f"{key}: unknown block-number fork (its rules are not "
                                      f"known here)", where=where)
    merge = (_uint(env["HIVE_MERGE_BLOCK_ID"], "HIVE_MERGE_BLOCK_ID", where, text=True)
             if "HIVE_MERGE_BLOCK_ID" in env else None)
    ttd = (_uint(env["HIVE_TERMINAL_TOTAL_DIFFICULTY"], "HIVE_TERMINAL_TOTAL_DIFFICULTY", where,
                 text=True, bits=256) if "HIVE_TERMINAL_TOTAL_DIFFICULTY" in env else None)
    times: dict[str, tuple[str, int]] = {}
    parts: dict[str, dict[str, tuple[str, int]]] = {}
    for key, value in env.items():
        if match := _FORKENV_TIME.fullmatch(key):
            times[match[1].lower()] = (key, _uint(value, key, where, text=True))
        elif match := _FORKENV_BLOB.fullmatch(key):
            parts.setdefault(match[1].lower(), {})[match[2]] = (key, _uint(value, key, where,
                                                                            text=True))
    blobs: dict[str, BlobSchedule] = {}
    for fork, given in parts.items():
        for part in ("TARGET", "MAX", "BASE_FEE_UPDATE_FRACTION"):
            if part not in given:
                raise MalformedInputError(f"HIVE_{fork.upper()}_BLOB_{part} is missing (the "
                                          f"other {fork} blob parameters are set)", where=where)
        blobs[fork] = _blob_schedule(given["TARGET"][1], given["MAX"][1],
                                     given["BASE_FEE_UPDATE_FRACTION"][1],
                                     f"HIVE_{fork.upper()}_BLOB_*", where)
    clique = "HIVE_CLIQUE_PERIOD" in env
    return _build(chain_id, name, blocks, times, blobs, ttd, merge, clique, where,
                  lambda fork: f"HIVE_{fork.upper()}_BLOB_*")


# -- built-in networks --------------------------------------------------------------------
#
# Every value below was checked against at least two sources reachable here:
#   geth      ethereum/go-ethereum params/config.go at 02b73d4 (2026-08-20): Mainnet-,
#             Sepolia-, HoodiChainConfig and Default{Cancun,Prague,BPO1,BPO2}BlobConfig
#   xspecs    ethereum/execution-specs FORK_CRITERIA of src/ethereum/<fork>/__init__.py
#             (1626a8c) and of src/ethereum/forks/{osaka,bpo1,bpo2}/__init__.py (whose
#             docstrings also tabulate Sepolia and Hoodi), blob constants of
#             forks/{bpo1,bpo2}/vm/gas.py
#   EIPs      ethereum/EIPs at f767a1e (2026-08-22): EIP-6953 and EIP-4895 (Shanghai),
#             EIP-7569 (Dencun), EIP-7600 (Pectra), EIP-7607 (Fusaka, with BPO1/BPO2 tables),
#             EIP-8134/EIP-8135 (mainnet BPO1/BPO2 parameters), EIP-4844/7691 constants
#   CL        beacon genesis time + fork epoch x 384 s, from ethereum/consensus-specs
#             configs/mainnet.yaml (a08d8a6, 2026-08-07: FULU 411392, BLOB_SCHEDULE maxima)
#             and the genesis times/epochs in node/chain/beacon/config.py (re-derived in
#             tests/test_header_rules.py)
#   clients   eth-clients/{mainnet,sepolia,hoodi} metadata/genesis.json (2025 snapshots,
#             up to Prague); besu config/src/main/resources/sepolia.json (checkpoint "first
#             proof of stake block" 1450409); alloy's SEPOLIA_PARIS_BLOCK and Hardhat's
#             hardforkHistory (MERGE 1450409 on chain 11155111)
# None of these schedules a fork after BPO2 on these networks (EIP-7773, Glamsterdam: no
# activation times; xspecs forks/amsterdam: Unscheduled), so each schedule is known complete
# up to the geth snapshot: KNOWN_UNTIL. A fork scheduled later (Amsterdam, BPO3, ...) is not
# listed here; past KNOWN_UNTIL the rules that depend on it are reported not checked.

QUIRKS = {
    "anvil-block-1-base-fee": "anvil (foundry 1.7.1) mines block 1 with the genesis base fee "
                              "instead of the EIP-1559 value computed from the genesis "
                              "(measured: 1 gwei, not 0.875 gwei, after an empty genesis)",
    "anvil-equal-timestamps": "anvil (foundry 1.7.1) gives blocks mined within the same second "
                              "their parent's timestamp (execution-specs requires a later "
                              "one); never an earlier one",
}
"""Named client deviations a :class:`ChainConfig` may accept, and what each one is."""

KNOWN_UNTIL = 1787184000
"""2026-08-20T00:00:00Z: the built-in schedules are verified complete up to here."""

_CANCUN_BLOBS = BlobSchedule(3, 6, 3338477)  # EIP-4844; geth DefaultCancunBlobConfig
_PRAGUE_BLOBS = BlobSchedule(6, 9, 5007716)  # EIP-7691; geth DefaultPragueBlobConfig
_BPO1_BLOBS = BlobSchedule(10, 15, 8346193)  # EIP-8134; xspecs bpo1; geth DefaultBPO1BlobConfig
_BPO2_BLOBS = BlobSchedule(14, 21, 11684671)  # EIP-8135; xspecs bpo2; geth DefaultBPO2BlobConfig


_LONDON_AT_GENESIS = tuple((fork, 0) for fork in (
    "homestead", "tangerine_whistle", "spurious_dragon", "byzantium", "constantinople",
    "petersburg", "istanbul", "muir_glacier", "berlin", "london"))
"""Every block fork through London at genesis (the testnets and devnets since 2022)."""


def _post_merge_forks(shanghai: int, cancun: int, prague: int, osaka: int, bpo1: int,
                      bpo2: int) -> tuple[TimeFork, ...]:
    return (TimeFork("shanghai", shanghai), TimeFork("cancun", cancun, _CANCUN_BLOBS),
            TimeFork("prague", prague, _PRAGUE_BLOBS), TimeFork("osaka", osaka),
            TimeFork("bpo1", bpo1, _BPO1_BLOBS), TimeFork("bpo2", bpo2, _BPO2_BLOBS))


MAINNET = ChainConfig(
    chain_id=1,
    name="mainnet",
    # geth MainnetChainConfig; xspecs FORK_CRITERIA (petersburg = constantinople there)
    block_forks=(("homestead", 1_150_000), ("dao_fork", 1_920_000),
                 ("tangerine_whistle", 2_463_000), ("spurious_dragon", 2_675_000),
                 ("byzantium", 4_370_000), ("constantinople", 7_280_000),
                 ("petersburg", 7_280_000), ("istanbul", 9_069_000),
                 ("muir_glacier", 9_200_000), ("berlin", 12_244_000), ("london", 12_965_000),
                 ("arrow_glacier", 13_773_000), ("gray_glacier", 15_050_000)),
    # shanghai: geth, xspecs, EIP-4895/6953, CL capella 194048; cancun: geth, xspecs,
    # EIP-7569, CL deneb 269568; prague: geth, xspecs, EIP-7600, CL electra 364032;
    # osaka/bpo1/bpo2: geth, xspecs forks/*, EIP-7607/8134/8135, CL fulu 411392 and
    # BLOB_SCHEDULE 412672/15, 419072/21
    time_forks=_post_merge_forks(1681338455, 1710338135, 1746612311, 1764798551,
                                 1765290071, 1767747671),
    terminal_total_difficulty=58_750_000_000_000_000_000_000,  # geth, xspecs paris
    merge_block=15_537_394,  # xspecs paris FORK_CRITERIA: the first proof-of-stake block
    known_until=KNOWN_UNTIL,
)

SEPOLIA = ChainConfig(
    chain_id=11155111,
    name="sepolia",
    # geth SepoliaChainConfig; eth-clients/sepolia genesis.json (no muirGlacierBlock there:
    # geth's 0 changes nothing, no difficulty bomb is checked)
    block_forks=_LONDON_AT_GENESIS,
    # shanghai/cancun: geth, eth-clients genesis.json, EIP-7569, CL 56832/132608;
    # prague: geth, besu, EIP-7600, CL 222464; osaka/bpo1/bpo2: geth, EIP-7607, xspecs
    # forks/* tables, CL 272640/274176/275712. BPO blob parameters: geth only (it uses the
    # mainnet DefaultBPO1/2BlobConfig for every network); maxima 15/21 also in the CL
    # BLOB_SCHEDULE of node/chain/beacon/config.py
    time_forks=_post_merge_forks(1677557088, 1706655072, 1741159776, 1760427360,
                                 1761017184, 1761607008),
    terminal_total_difficulty=17_000_000_000_000_000,  # geth, besu, eth-clients
    merge_block=1_450_409,  # besu checkpoint "first proof of stake block", alloy, Hardhat
    known_until=KNOWN_UNTIL,
)

HOODI = ChainConfig(
    chain_id=560048,
    name="hoodi",
    # geth HoodiChainConfig, eth-clients/hoodi genesis.json: everything at genesis
    block_forks=_LONDON_AT_GENESIS,
    # shanghai/cancun at genesis: geth, eth-clients genesis.json; prague: geth,
    # eth-clients, EIP-7600, CL electra 2048; osaka/bpo1/bpo2: geth, EIP-7607, xspecs
    # forks/* tables, CL 50688/52480/54016. BPO blob parameters: as for Sepolia
    time_forks=_post_merge_forks(0, 0, 1742999832, 1761677592, 1762365720, 1762955544),
    terminal_total_difficulty=0,  # merged at genesis: geth, eth-clients
    merge_block=0,
    known_until=KNOWN_UNTIL,
)

ANVIL = ChainConfig(
    chain_id=31337,
    name="anvil",
    # `anvil --hardfork prague` (foundry 1.7.1, what the tests and the demo run): every
    # fork at genesis, proof of stake from genesis, Prague's blob schedule (EIP-7691)
    block_forks=_LONDON_AT_GENESIS,
    time_forks=(TimeFork("shanghai", 0), TimeFork("cancun", 0, _CANCUN_BLOBS),
                TimeFork("prague", 0, _PRAGUE_BLOBS)),
    terminal_total_difficulty=0,
    merge_block=0,
    quirks=frozenset({"anvil-block-1-base-fee", "anvil-equal-timestamps"}),
)
"""A local anvil devnet run with ``--hardfork prague`` (not a public network: its quirk
is accepted on this chain only)."""

ANVIL_OSAKA = replace(ANVIL, name="anvil-osaka",
                      time_forks=(*ANVIL.time_forks, TimeFork("osaka", 0)))
"""``anvil --hardfork osaka``: the same, with Osaka from genesis (Prague's blob schedule)."""

NETWORKS: dict[str, ChainConfig] = {cfg.name: cfg for cfg in (MAINNET, SEPOLIA, HOODI, ANVIL,
                                                              ANVIL_OSAKA)}


def load_chain_config(path_or_name: str | Path) -> ChainConfig:
    """A built-in network (``"mainnet"``, ``"sepolia"``, ``"hoodi"``), or the schedule in a
    geth ``genesis.json`` or hive ``forkenv.json`` file (told apart by their keys:
    ``config``/``chainId`` or ``HIVE_*``). Raises :class:`MalformedInputError` with one line
    naming the file and the key when it cannot be read."""
    if not isinstance(path_or_name, str | Path):
        raise TypeError(f"load_chain_config wants a network name or a path, not "
                        f"{type(path_or_name).__name__}")
    if isinstance(path_or_name, str) and path_or_name in NETWORKS:
        return NETWORKS[path_or_name]
    path = Path(path_or_name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise MalformedInputError(
            f"cannot read {path}: {reason} (give {', '.join(NETWORKS)}, a genesis.json or a "
            f"hive forkenv.json)") from None
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError(f"not JSON: {exc}", where=str(path)) from None
    if isinstance(raw, Mapping) and any(isinstance(k, str) and k.startswith("HIVE_")
                                        for k in raw):
        return chain_config_from_forkenv(raw, where=str(path))
    if isinstance(raw, Mapping) and ("config" in raw or "chainId" in raw):
        return chain_config_from_genesis(raw, where=str(path))
    raise MalformedInputError("neither a geth genesis (config.chainId) nor a hive forkenv "
                              "(HIVE_CHAIN_ID)", where=str(path))
