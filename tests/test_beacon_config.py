"""Network configuration (node.chain.beacon.config): fork schedules, digests, config.yaml.

The built-in networks are pinned by digests other clients publish (mainnet's phase0..BPO2
digests as Nethermind's tests and live gossip topics show them, Sepolia's Deneb/Electra
fork data roots, Hoodi's current digest), fork lookups at every boundary, and every
``config.yaml`` of the shared minimal ``light_client/sync`` cases, whose ``meta.yaml`` and
``steps.yaml`` name the fork digest of each bootstrap and update.
"""

from __future__ import annotations

from pathlib import Path

import cramjam
import pytest
import yaml

from node.chain.beacon.config import (
    FAR_FUTURE_EPOCH,
    FORK_NAMES,
    HOODI,
    MAINNET,
    NETWORKS,
    SEPOLIA,
    BlobParameters,
    ConfigError,
    Fork,
    NetworkConfig,
    UnknownForkDigestError,
    network,
)
from node.chain.beacon.containers import MINIMAL, compute_fork_digest, light_client_types
from node.chain.errors import MalformedInputError

from vectors import vector_path

VECTORS = vector_path("consensus-light-client")
CASES = sorted(VECTORS.glob("minimal/*/sync/pyspec_tests/*"))


def _case_id(case: Path) -> str:
    return f"{case.parts[-4]}/{case.name}"


# -- built-in networks ---------------------------------------------------------------------

MAINNET_DIGESTS = {
    "phase0": "b5303f2a", "altair": "afcaaba0", "bellatrix": "4a26c58b",
    "capella": "bba4da96", "deneb": "6a95a1a9", "electra": "ad532ceb", "fulu": "cc2c5cdb",
}


@pytest.mark.parametrize(("fork", "digest"), MAINNET_DIGESTS.items())
def test_mainnet_fork_digests_are_the_well_known_ones(fork: str, digest: str) -> None:
    assert MAINNET.fork_digest(fork).hex() == digest
    assert MAINNET.fork_digest(MAINNET.fork(fork)).hex() == digest
    assert MAINNET.fork_by_digest(bytes.fromhex(digest)).name == fork


@pytest.mark.parametrize(("epoch", "digest"), [
    (0, "b5303f2a"), (269568, "6a95a1a9"), (364032, "ad532ceb"), (411391, "ad532ceb"),
    (411392, "cc2c5cdb"),  # Fulu with Electra's blob parameters (EIP-7892 fallback)
    (412671, "cc2c5cdb"), (412672, "cb0d1acc"),  # BPO1: 15 blobs
    (419071, "cb0d1acc"), (419072, "8c9f62fe"), (10**7, "8c9f62fe"),  # BPO2: 21 blobs
])
def test_mainnet_digest_follows_the_blob_schedule(epoch: int, digest: str) -> None:
    assert MAINNET.fork_digest_at_epoch(epoch).hex() == digest
    assert MAINNET.fork_by_digest(bytes.fromhex(digest)) == MAINNET.fork_at_epoch(epoch)


def test_pre_fulu_digest_is_phase0_compute_fork_digest() -> None:
    for cfg in NETWORKS.values():
        for fork in cfg.forks[:6]:
            assert cfg.fork_digest(fork) == compute_fork_digest(
                fork.version, cfg.genesis_validators_root)


def test_testnet_digests_match_published_values() -> None:
    assert SEPOLIA.fork_digest("deneb").hex() == "d31f6191"
    assert SEPOLIA.fork_digest("electra").hex() == "14045b5a"
    assert HOODI.fork_digest_at_epoch(60000).hex() == "c6ecb76c"  # Hoodi after BPO2
    # Gloas keeps Fulu's digest rule; Sepolia is on Gloas with BPO2's blob parameters.
    assert SEPOLIA.fork_by_digest(SEPOLIA.fork_digest_at_epoch(353024)).name == "gloas"


def test_every_fork_digest_maps_back_to_its_fork() -> None:
    for cfg in NETWORKS.values():
        digests = cfg.fork_digests()
        for digest, fork in digests.items():
            assert cfg.fork_by_digest(digest) is fork
        assert {fork.name for fork in digests.values()} == {fork.name for fork in cfg.forks}


def test_digests_of_one_network_are_unknown_to_another() -> None:
    digest = SEPOLIA.fork_digest("electra")
    with pytest.raises(UnknownForkDigestError, match="0x14045b5a is not one of mainnet") as err:
        MAINNET.fork_by_digest(digest)
    assert err.value.digest == digest
    assert isinstance(err.value, MalformedInputError)


@pytest.mark.parametrize("digest", [b"", b"\x00" * 3, b"\x00" * 5, "6a95a1a9"])
def test_fork_by_digest_wants_four_bytes(digest: object) -> None:
    with pytest.raises(ConfigError, match="4 bytes"):
        MAINNET.fork_by_digest(digest)  # type: ignore[arg-type]


@pytest.mark.parametrize(("cfg", "epoch", "fork"), [
    (MAINNET, 0, "phase0"), (MAINNET, 74239, "phase0"), (MAINNET, 74240, "altair"),
    (MAINNET, 144895, "altair"), (MAINNET, 144896, "bellatrix"), (MAINNET, 194047, "bellatrix"),
    (MAINNET, 194048, "capella"), (MAINNET, 269567, "capella"), (MAINNET, 269568, "deneb"),
    (MAINNET, 364031, "deneb"), (MAINNET, 364032, "electra"), (MAINNET, 411391, "electra"),
    (MAINNET, 411392, "fulu"), (MAINNET, FAR_FUTURE_EPOCH - 1, "fulu"),
    (MAINNET, FAR_FUTURE_EPOCH, "gloas"),  # an unscheduled fork is "at" FAR_FUTURE_EPOCH
    (SEPOLIA, 49, "phase0"), (SEPOLIA, 50, "altair"), (SEPOLIA, 100, "bellatrix"),
    (SEPOLIA, 222464, "electra"), (SEPOLIA, 272639, "electra"), (SEPOLIA, 272640, "fulu"),
    (SEPOLIA, 353023, "fulu"), (SEPOLIA, 353024, "gloas"),
    (HOODI, 0, "deneb"), (HOODI, 2047, "deneb"), (HOODI, 2048, "electra"),
    (HOODI, 50687, "electra"), (HOODI, 50688, "fulu"),
])
def test_fork_at_epoch_boundaries(cfg: NetworkConfig, epoch: int, fork: str) -> None:
    assert cfg.fork_at_epoch(epoch).name == fork


def test_fork_at_slot_uses_the_preset_epoch_length() -> None:
    assert MAINNET.fork_at_slot(74240 * 32 - 1).name == "phase0"
    assert MAINNET.fork_at_slot(74240 * 32).name == "altair"
    assert MAINNET.fork_at_slot(13_164_544).name == "fulu"  # Fusaka's first slot
    assert MAINNET.sync_committee_period_at_slot(8192 * 3 + 8191) == 3


@pytest.mark.parametrize("bad", [-1, 1.5, "7"])
def test_fork_lookup_refuses_non_epochs(bad: object) -> None:
    with pytest.raises(ConfigError):
        MAINNET.fork_at_epoch(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        MAINNET.fork_at_slot(bad)  # type: ignore[arg-type]


def test_unknown_fork_name_is_a_typed_error() -> None:
    with pytest.raises(ConfigError, match="no fork 'eip4844'"):
        MAINNET.fork_digest("eip4844")
    foreign = Fork("deneb", bytes.fromhex("90000073"), 132608)
    with pytest.raises(ConfigError, match="not a fork of mainnet"):
        MAINNET.fork_digest(foreign)


def test_genesis_and_clock() -> None:
    assert (MAINNET.genesis_time, SEPOLIA.genesis_time, HOODI.genesis_time) == (
        1606824023, 1655733600, 1742213400)
    assert MAINNET.current_slot(1606824023) == 0
    assert MAINNET.current_slot(1606824023 + 11.99) == 0
    assert MAINNET.current_slot(1606824023 + 12) == 1
    assert MAINNET.slot_start(13_164_544) == 1764798551  # 2025-12-03 21:49:11 UTC
    with pytest.raises(ConfigError, match="before mainnet's genesis"):
        MAINNET.current_slot(1606824022)


def test_with_genesis_validators_root_rebinds_digests() -> None:
    other = MAINNET.with_genesis_validators_root(bytes(32))
    assert other.genesis_validators_root == bytes(32)
    assert MAINNET.genesis_validators_root != bytes(32)  # the original is untouched
    assert other.fork_digest("deneb") != MAINNET.fork_digest("deneb")
    with pytest.raises(ConfigError, match="32 bytes"):
        MAINNET.with_genesis_validators_root(b"\x01" * 31)


@pytest.mark.parametrize(("forks", "message"), [
    ((), "non-empty"),
    ((Fork("altair", b"\x01\x00\x00\x00", 0),), "in this order"),
    ((Fork("phase0", b"\x00" * 4, 0), Fork("bellatrix", b"\x02\x00\x00\x00", 1)), "skipped"),
    ((Fork("phase0", b"\x00" * 4, 5),), "epoch 0"),
    ((Fork("phase0", b"\x00" * 4, 0), Fork("altair", b"\x00" * 4, 1)), "reuses"),
    ((Fork("phase0", b"\x00" * 4, 0), Fork("altair", b"\x01", 1)), "4 bytes"),
    ((Fork("phase0", b"\x00" * 4, 0), Fork("altair", b"\x01\x00\x00\x00", 9),
      Fork("bellatrix", b"\x02\x00\x00\x00", 3)), "before altair"),
])
def test_network_config_refuses_bad_schedules(forks: tuple[Fork, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NetworkConfig("bad", MINIMAL, bytes(32), 0, 6, forks)


def test_blob_schedule_must_ascend() -> None:
    with pytest.raises(ConfigError, match="distinct and ascending"):
        NetworkConfig("bad", MINIMAL, bytes(32), 0, 6, MAINNET.forks[:1],
                      blob_schedule=(BlobParameters(5, 9), BlobParameters(5, 12)))


def test_fork_names_cover_the_light_client_forks() -> None:
    from node.chain.beacon.containers import FORKS
    assert set(FORKS) <= set(FORK_NAMES)
    assert FORK_NAMES[:7] == ("phase0", "altair", "bellatrix", "capella", "deneb",
                              "electra", "fulu")


# -- config.yaml -----------------------------------------------------------------------------

# A mainnet config in the consensus-specs layout (written for this test, values as above).
MAINNET_YAML = """\
PRESET_BASE: 'mainnet'
CONFIG_NAME: 'mainnet'
MIN_GENESIS_TIME: 1606824000  # Dec 1, 2020, 12pm UTC
GENESIS_FORK_VERSION: 0x00000000
GENESIS_DELAY: 604800
ALTAIR_FORK_VERSION: 0x01000000
ALTAIR_FORK_EPOCH: 74240
BELLATRIX_FORK_VERSION: 0x02000000
BELLATRIX_FORK_EPOCH: 144896
CAPELLA_FORK_VERSION: 0x03000000
CAPELLA_FORK_EPOCH: 194048
DENEB_FORK_VERSION: 0x04000000
DENEB_FORK_EPOCH: 269568
ELECTRA_FORK_VERSION: 0x05000000
ELECTRA_FORK_EPOCH: 364032
FULU_FORK_VERSION: 0x06000000
FULU_FORK_EPOCH: 411392
GLOAS_FORK_VERSION: 0x07000000
GLOAS_FORK_EPOCH: 18446744073709551615
HEZE_FORK_VERSION: 0x08000000
HEZE_FORK_EPOCH: 18446744073709551615
TERMINAL_BLOCK_HASH_ACTIVATION_EPOCH: 18446744073709551615
SLOT_DURATION_MS: 12000
MAX_BLOBS_PER_BLOCK_ELECTRA: 9
BLOB_SCHEDULE:
  - EPOCH: 412672
    MAX_BLOBS_PER_BLOCK: 15
  - EPOCH: 419072
    MAX_BLOBS_PER_BLOCK: 21
"""


def test_from_yaml_reproduces_the_built_in_mainnet() -> None:
    cfg = NetworkConfig.from_yaml(MAINNET_YAML,
                                  genesis_validators_root=MAINNET.genesis_validators_root,
                                  genesis_time=MAINNET.genesis_time)
    assert cfg == MAINNET
    # Without the genesis time the testnet convention MIN_GENESIS_TIME + GENESIS_DELAY applies.
    assert NetworkConfig.from_yaml(MAINNET_YAML).genesis_time == 1606824000 + 604800
    assert NetworkConfig.from_yaml(MAINNET_YAML, name="m2").name == "m2"


def test_from_yaml_accepts_both_slot_length_keys() -> None:
    seconds = MAINNET_YAML.replace("SLOT_DURATION_MS: 12000", "SECONDS_PER_SLOT: 12")
    assert NetworkConfig.from_yaml(seconds).seconds_per_slot == 12
    both = MAINNET_YAML + "SECONDS_PER_SLOT: 12\n"
    assert NetworkConfig.from_yaml(both).seconds_per_slot == 12


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_from_yaml_reads_every_light_client_sync_case(case: Path) -> None:
    text = (case / "config.yaml").read_text()
    raw = yaml.safe_load(text)
    meta = yaml.safe_load((case / "meta.yaml").read_text())
    root = bytes.fromhex(meta["genesis_validators_root"][2:])
    cfg = NetworkConfig.from_yaml(text, genesis_validators_root=root)
    assert cfg.preset is MINIMAL and cfg.seconds_per_slot == raw["SECONDS_PER_SLOT"] == 6
    assert cfg.genesis_time == raw["MIN_GENESIS_TIME"] + raw["GENESIS_DELAY"]
    for fork in cfg.forks[1:]:
        assert fork.epoch == raw[f"{fork.name.upper()}_FORK_EPOCH"]
        assert int.from_bytes(fork.version, "big") == raw[f"{fork.name.upper()}_FORK_VERSION"]
    assert len(cfg.forks) == 1 + sum(key.endswith("_FORK_EPOCH") for key in raw
                                     if key != "TERMINAL_BLOCK_HASH_ACTIVATION_EPOCH")
    # Every digest the case names belongs to one of its forks ...
    for key in ("bootstrap_fork_digest", "store_fork_digest"):
        cfg.fork_by_digest(bytes.fromhex(meta[key][2:]))
    # ... and an update's digest is that of the fork at its attested header's slot, the
    # rule the Beacon API's SSZ context follows.
    for step in yaml.safe_load((case / "steps.yaml").read_text()):
        if "process_update" not in step:
            continue
        info = step["process_update"]
        digest = bytes.fromhex(info["update_fork_digest"][2:])
        fork = cfg.fork_by_digest(digest)
        data = cramjam.snappy.decompress_raw((case / f"{info['update']}.ssz_snappy").read_bytes())
        update = light_client_types(fork.name, MINIMAL).LightClientUpdate.decode(bytes(data))
        assert cfg.fork_at_slot(update.attested_header.beacon.slot) == fork
        assert cfg.fork_digest_at_epoch(cfg.epoch_at_slot(update.attested_header.beacon.slot)) \
            == digest


def test_there_are_light_client_sync_cases() -> None:
    assert len(CASES) >= 20, f"expected the shared light_client/sync cases under {VECTORS}"


BASE = "PRESET_BASE: minimal\nGENESIS_FORK_VERSION: 0x00000001\nMIN_GENESIS_TIME: 100\n" \
       "GENESIS_DELAY: 5\nSECONDS_PER_SLOT: 6\n"


@pytest.mark.parametrize(("text", "message"), [
    ("PRESET_BASE: [unclosed\n", "not valid YAML at line"),
    ("a: b: c\n", "not valid YAML"),
    ("- PRESET_BASE\n", "must be a mapping"),
    ("", "must be a mapping"),
    (BASE.replace("PRESET_BASE: minimal", "PRESET_BASE: gnosis"), "PRESET_BASE must be one of"),
    (BASE.replace("PRESET_BASE: minimal\n", ""), "PRESET_BASE must be one of"),
    (BASE.replace("0x00000001", "0x001"), "GENESIS_FORK_VERSION must be 4 bytes"),
    (BASE.replace("0x00000001", "1"), "GENESIS_FORK_VERSION must be 4 bytes"),
    (BASE.replace("GENESIS_FORK_VERSION: 0x00000001\n", ""), "GENESIS_FORK_VERSION"),
    (BASE.replace("SECONDS_PER_SLOT: 6", "SECONDS_PER_SLOT: six"), "SECONDS_PER_SLOT must be"),
    (BASE.replace("SECONDS_PER_SLOT: 6\n", ""), "neither SECONDS_PER_SLOT nor SLOT_DURATION_MS"),
    (BASE + "SLOT_DURATION_MS: 5500\n", "not a whole number of seconds"),
    (BASE + "SLOT_DURATION_MS: 12000\n", "contradicts"),
    (BASE.replace("SECONDS_PER_SLOT: 6", "SECONDS_PER_SLOT: 0"), "positive"),
    (BASE.replace("MIN_GENESIS_TIME: 100\n", ""), "MIN_GENESIS_TIME"),
    (BASE + "ALTAIR_FORK_VERSION: 0x01000001\n", "ALTAIR_FORK_VERSION but no ALTAIR_FORK_EPOCH"),
    (BASE + "ALTAIR_FORK_EPOCH: 0\n", "ALTAIR_FORK_EPOCH but no ALTAIR_FORK_VERSION"),
    (BASE + "ALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: -1\n", "ALTAIR_FORK_EPOCH must"),
    (BASE + "ALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: 18446744073709551616\n",
     "does not fit in uint64"),
    (BASE + "ALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: 0\n"
     "CAPELLA_FORK_VERSION: 0x03000001\nCAPELLA_FORK_EPOCH: 5\n", "no BELLATRIX_FORK_EPOCH"),
    (BASE + "ALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: 9\n"
     "BELLATRIX_FORK_VERSION: 0x02000001\nBELLATRIX_FORK_EPOCH: 3\n", "before altair"),
    (BASE + "ALTAIR_FORK_VERSION: 0x00000001\nALTAIR_FORK_EPOCH: 1\n", "reuses fork version"),
    (BASE + "HEZE_FORK_VERSION: 0x08000001\nHEZE_FORK_EPOCH: 5\n", "fork HEZE at epoch 5"),
    (MAINNET_YAML.replace("MAX_BLOBS_PER_BLOCK_ELECTRA: 9\n", ""), "MAX_BLOBS_PER_BLOCK_ELECTRA"),
    (MAINNET_YAML.replace("EPOCH: 419072", "EPOCH: 412672"), "distinct and ascending"),
    (MAINNET_YAML.replace("EPOCH: 419072", "EPOCH: soon"), "BLOB_SCHEDULE[1].EPOCH"),
    (BASE + "BLOB_SCHEDULE: 5\n", "BLOB_SCHEDULE must be a list"),
    (BASE + "BLOB_SCHEDULE: [5]\n", "BLOB_SCHEDULE[0] must be a mapping"),
])
def test_malformed_config_yaml_is_a_typed_one_line_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        NetworkConfig.from_yaml(text)
    assert message in str(err.value)
    assert isinstance(err.value, MalformedInputError)
    assert "\n" not in str(err.value)


def test_minimal_base_config_reads() -> None:
    cfg = NetworkConfig.from_yaml(BASE + "BLOB_SCHEDULE:\n")
    assert cfg.name == "custom" and [f.name for f in cfg.forks] == ["phase0"]
    assert cfg.genesis_time == 105 and cfg.blob_schedule == ()


# -- network() ---------------------------------------------------------------------------------


def test_network_by_name() -> None:
    assert network("mainnet") is MAINNET
    assert network("sepolia") is SEPOLIA
    assert network("hoodi") is HOODI
    with pytest.raises(ConfigError, match="unknown network 'holesky'"):
        network("holesky")


def test_network_from_a_path_and_its_genesis_root(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        MAINNET_YAML.replace("CONFIG_NAME: 'mainnet'", "CONFIG_NAME: 'x'"))
    with pytest.raises(ConfigError, match=r"no genesis_validators_root\.txt beside it"):
        network(str(tmp_path / "config.yaml"))  # every signature domain needs the root
    (tmp_path / "genesis_validators_root.txt").write_text(
        "0x" + MAINNET.genesis_validators_root.hex() + "\n")
    cfg = network(str(tmp_path))
    assert cfg.name == "x"
    assert cfg.fork_digest("deneb").hex() == "6a95a1a9"


def test_network_path_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("PRESET_BASE: nope\n")
    with pytest.raises(ConfigError, match=f"{bad}: config.yaml: PRESET_BASE"):
        network(str(bad))
    bad.write_text(MAINNET_YAML)
    (tmp_path / "genesis_validators_root.txt").write_text("0x1234")
    with pytest.raises(ConfigError, match="32-byte"):
        network(str(tmp_path))
