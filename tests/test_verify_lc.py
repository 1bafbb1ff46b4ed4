"""``orbital verify lc`` end to end on a consensus-spec-tests case turned into the files a
ground station would downlink (Beacon API JSON, bare and chunked SSZ): the verified finalized
and optimistic execution blocks are printed; a corrupted copy exits 1 naming the check; a
malformed file exits 2; an unanchored run says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cramjam
import pytest
import yaml

from node.chain.beacon import api
from node.chain.beacon.config import NetworkConfig
from node.chain.beacon.containers import light_client_types
from node.cli.main import main

from vectors import vector_path

VECTORS = vector_path("consensus-light-client")
CASE = VECTORS / "minimal" / "deneb" / "sync" / "pyspec_tests" / "light_client_sync"
META = yaml.safe_load((CASE / "meta.yaml").read_text())
STEPS = [s["process_update"] for s in yaml.safe_load((CASE / "steps.yaml").read_text())[:4]]
TYPES = light_client_types("deneb", "minimal")
FINAL_ROOT = "0xcac13c2ded1b876db0a305eb60a98b439fd356aa5a584fabe10d0ee20b54f2ba"
OPTIMISTIC_ROOT = "0x51af3e3e1fe0c9c4c48eec4a9ed5941c2e12768d8b205515d1de310ce42b16a3"


def _read(name: str) -> bytes:
    return bytes(cramjam.snappy.decompress_raw((CASE / f"{name}.ssz_snappy").read_bytes()))


def _envelope(obj: Any) -> dict[str, Any]:
    return {"version": "deneb", "data": obj.to_json()}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """config dir, JSON and SSZ files, and the clock for the case."""
    d = tmp_path_factory.mktemp("lc")
    (d / "net").mkdir()
    (d / "net" / "config.yaml").write_text((CASE / "config.yaml").read_text())
    (d / "net" / "genesis_validators_root.txt").write_text(META["genesis_validators_root"])
    config = NetworkConfig.from_yaml((CASE / "config.yaml").read_text())
    bootstrap = TYPES.LightClientBootstrap.decode(_read("bootstrap"))
    updates = [TYPES.LightClientUpdate.decode(_read(s["update"])) for s in STEPS]
    finality = TYPES.LightClientFinalityUpdate(
        attested_header=updates[2].attested_header, finalized_header=updates[2].finalized_header,
        finality_branch=updates[2].finality_branch, sync_aggregate=updates[2].sync_aggregate,
        signature_slot=updates[2].signature_slot)
    optimistic = TYPES.LightClientOptimisticUpdate(
        attested_header=updates[3].attested_header, sync_aggregate=updates[3].sync_aggregate,
        signature_slot=updates[3].signature_slot)
    paths = {"net": str(d / "net"),
             "now": str(config.genesis_time + STEPS[3]["current_slot"] * config.seconds_per_slot)}
    for name, obj in (("bootstrap", bootstrap), ("finality", finality),
                      ("optimistic", optimistic)):
        (d / f"{name}.json").write_text(json.dumps(_envelope(obj)))
        (d / f"{name}.ssz").write_bytes(obj.encode())
        paths[name] = str(d / f"{name}.json")
        paths[f"{name}_ssz"] = str(d / f"{name}.ssz")
    (d / "updates.json").write_text(json.dumps([_envelope(u) for u in reversed(updates[:2])]))
    bound = config.with_genesis_validators_root(bytes.fromhex(
        META["genesis_validators_root"][2:]))
    (d / "updates.ssz").write_bytes(api.encode_updates_ssz(bound, updates[:2]))
    paths["updates"], paths["updates_ssz"] = str(d / "updates.json"), str(d / "updates.ssz")
    paths["objects"] = {"finality": finality, "updates": updates}
    paths["dir"] = d
    return paths


def verify(capsys: pytest.CaptureFixture[str], files: dict[str, Any], *extra: str,
           ssz: bool = False, checkpoint: str | None = META["trusted_block_root"],
           **override: str) -> tuple[int, str, str]:
    suffix = "_ssz" if ssz else ""
    chosen = {k: override.get(k, files[k + suffix])
              for k in ("bootstrap", "updates", "finality", "optimistic")}
    argv = ["verify", "lc", "--network", files["net"], "--now", files["now"],
            "--bootstrap", chosen["bootstrap"], "--updates", chosen["updates"],
            "--finality", chosen["finality"], "--optimistic", chosen["optimistic"], *extra]
    argv += ["--unanchored"] if checkpoint is None else ["--trusted", checkpoint]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("ssz", [False, True], ids=["json", "ssz"])
def test_verified_heads_are_printed(capsys: pytest.CaptureFixture[str], files: dict[str, Any],
                                    ssz: bool) -> None:
    code, out, err = verify(capsys, files, ssz=ssz)
    assert (code, err) == (0, "")
    finalized = files["objects"]["finality"].finalized_header.execution
    assert "(trusted, --trusted)" in out
    assert "2 update(s), a finality update, an optimistic update verified" in out
    assert (f"verified finalized: execution block {finalized.block_number} "
            f"0x{finalized.block_hash.hex()} stateRoot 0x{finalized.state_root.hex()} "
            f"(beacon slot 96)") in out
    assert "verified optimistic: execution block" in out and "(beacon slot 129)" in out


def test_json_report(capsys: pytest.CaptureFixture[str], files: dict[str, Any]) -> None:
    code, out, _ = verify(capsys, files, "--json")
    report = json.loads(out)
    assert code == 0 and report["verified"] and report["checkpointTrusted"]
    assert report["finalized"]["beaconRoot"] == FINAL_ROOT
    assert report["optimistic"]["beaconRoot"] == OPTIMISTIC_ROOT
    assert report["finalized"]["execution"]["blockNumber"] == \
        files["objects"]["finality"].finalized_header.execution.block_number


def test_without_a_checkpoint_the_output_says_it_is_not_anchored(
        capsys: pytest.CaptureFixture[str], files: dict[str, Any]) -> None:
    code, out, _ = verify(capsys, files, checkpoint=None)
    assert code == 0 and "NOT anchored" in out


def test_the_old_checkpoint_option_is_the_trusted_root(
        capsys: pytest.CaptureFixture[str], files: dict[str, Any]) -> None:
    argv = ["verify", "lc", "--network", files["net"], "--now", files["now"],
            "--bootstrap", files["bootstrap"], "--checkpoint", META["trusted_block_root"]]
    assert main(argv) == 0
    assert "(trusted, --trusted)" in capsys.readouterr().out
    assert main([*argv, "--unanchored"]) == 2
    assert "contradicts" in capsys.readouterr().err


def _corrupt(files: dict[str, Any], name: str, edit: Any) -> str:
    doc = json.loads(Path(files[name]).read_text())
    edit(doc)
    path = files["dir"] / f"corrupt-{name}-{abs(hash(json.dumps(doc))) % 10**8}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _flip_hex(value: str, at: int = -3) -> str:
    digit = value[at]
    return value[:at] + ("0" if digit != "0" else "1") + value[at + 1:] if at != -1 else \
        value[:-1] + ("0" if value[-1] != "0" else "1")


def _other_signature(files: dict[str, Any]) -> str:
    doc = json.loads(Path(files["optimistic"]).read_text())
    return doc["data"]["sync_aggregate"]["sync_committee_signature"]


CORRUPTIONS: dict[str, tuple[str, Any, int, str]] = {
    "finality signature, one digit": ("finality", lambda d, f: d["data"]["sync_aggregate"].update(
        sync_committee_signature=_flip_hex(d["data"]["sync_aggregate"]
                                           ["sync_committee_signature"], 20)),
        2, "is not a G2 point"),
    "finality signature, another valid one": ("finality", lambda d, f: d["data"]
                                              ["sync_aggregate"].update(
        sync_committee_signature=_other_signature(f)), 1,
        "finality update (attested slot 112): sync_aggregate.sync_committee_signature: not the"),
    "finality branch": ("finality", lambda d, f: d["data"]["finality_branch"].__setitem__(
        1, _flip_hex(d["data"]["finality_branch"][1])), 1, "finality_branch: does not prove"),
    "finalized execution block hash": ("finality", lambda d, f: d["data"]["finalized_header"]
                                       ["execution"].update(block_hash=_flip_hex(
                                           d["data"]["finalized_header"]["execution"]
                                           ["block_hash"])), 1,
                                       "finalized_header.execution_branch"),
    "optimistic participation": ("optimistic", lambda d, f: d["data"]["sync_aggregate"].update(
        sync_committee_bits=_flip_hex(d["data"]["sync_aggregate"]["sync_committee_bits"], 3)),
        1, "optimistic update (attested slot 129): sync_aggregate.sync_committee_signature: "
           "not the signature of the 28 participating"),
    "bootstrap committee key": ("bootstrap", lambda d, f: d["data"]["current_sync_committee"]
                                ["pubkeys"].reverse(), 1, "current_sync_committee_branch"),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupted_copies_are_refused_naming_the_check(
        capsys: pytest.CaptureFixture[str], files: dict[str, Any], name: str) -> None:
    which, edit, want_code, check = CORRUPTIONS[name]
    code, _, err = verify(capsys, files, **{which: _corrupt(files, which,
                                                              lambda d: edit(d, files))})
    assert code == want_code, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert check in err, err


def test_wrong_checkpoint_exits_1(capsys: pytest.CaptureFixture[str],
                                  files: dict[str, Any]) -> None:
    code, _, err = verify(capsys, files, checkpoint="0x" + "11" * 32)
    assert code == 1 and "is not the trusted block root" in err


def test_stale_checkpoint_exits_1(capsys: pytest.CaptureFixture[str],
                                  files: dict[str, Any]) -> None:
    month_later = str(float(files["now"]) + 30 * 86400)
    code = main(["verify", "lc", "--network", files["net"], "--now", month_later,
                 "--bootstrap", files["bootstrap"], "--checkpoint", META["trusted_block_root"]])
    _, err = capsys.readouterr()
    assert code == 1 and "days old, more than the allowed 14.0 days" in err


@pytest.mark.parametrize("content, message", [
    ('{"version": "deneb", "data": {', "body is not JSON"),
    ('{"version": "deneb"}', "data"),
    ('{"version": "phase9", "data": {}}', "phase9"),
    ("\x00\x01\x02", "not an SSZ LightClientBootstrap"),
])
def test_malformed_bootstrap_exits_2(capsys: pytest.CaptureFixture[str], files: dict[str, Any],
                                     content: str, message: str) -> None:
    path = files["dir"] / "malformed.bin"
    path.write_bytes(content.encode("latin-1"))
    code, _, err = verify(capsys, files, bootstrap=str(path))
    assert code == 2, err
    assert message in err and len(err.splitlines()) == 1


def test_a_store_file_keeps_the_result(capsys: pytest.CaptureFixture[str],
                                       files: dict[str, Any], tmp_path: Path) -> None:
    from node.chain.beacon.config import network
    from node.chain.beacon.store import LightClient

    store = tmp_path / "lc.sqlite"
    code, _, _ = verify(capsys, files, "--store", str(store))
    assert code == 0
    resumed = LightClient.resume(network(files["net"]), store)
    assert "0x" + resumed.store.finalized_header.beacon.hash_tree_root().hex() == FINAL_ROOT
    resumed.close()
