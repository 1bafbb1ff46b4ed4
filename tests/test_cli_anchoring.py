"""``orbital verify``'s trust decision: verified means anchored.

A reviewer's attack, kept as tests: a fabricated post-Merge child of a genuine block (any
stateRoot) hashes and links, yet must never pass as verified -- not through ``verify chain``,
not as a reorg, not under ``verify proof``. Only an explicit anchor of the fabricated hash
itself makes it "verified", and then the output names that anchor. Without any anchor the
commands refuse to choose for the user (exit 2) unless ``--unanchored`` is given, and then
say NOT anchored. Numbers are bounded where parsed; internal errors exit 70."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from test_beacon_follow import write_network

from node.chain.header import Header, header_to_rpc
from node.cli import verify as verify_cli
from node.cli.main import main

from vectors import execution_apis, hive_header, hive_latest, io_case

BLOCK = hive_latest()  # block 54 with full transactions
PROOF = io_case("eth_getProof", "get-account-proof-with-storage").result  # at block 54


def H(number: int) -> Header:
    return hive_header(number)


def trusted(header: Header) -> list[str]:
    return ["--trusted", f"{header.number}:0x{header.hash.hex()}"]


def write(tmp_path: Path, name: str, value: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(value))
    return str(path)


def headers_file(tmp_path: Path, name: str, headers: list[Header]) -> str:
    return write(tmp_path, name, [header_to_rpc(h) for h in headers])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def forged_sibling(number: int, **changes: Any) -> Header:
    """A fabricated child of genuine block ``number - 1``: every rule holds (the genuine
    header's gas, fee and time fields), only the state it commits to is made up."""
    return dataclasses.replace(H(number), **{"state_root": b"\x66" * 32, **changes})


def forged_block_json(header: Header) -> dict[str, Any]:
    """``BLOCK`` (54) re-headed with ``header``: a file a lying RPC could serve."""
    return {**BLOCK, **header_to_rpc(header)}


# --- the choice is explicit -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["header", "block"])
def test_no_anchor_and_no_unanchored_exits_2_explaining_the_choice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    code, out, err = run(capsys, "verify", kind, write(tmp_path, "b.json", BLOCK))
    line = one_line(err)
    assert (code, out) == (2, "")
    assert "--trusted NUMBER:HASH" in line and "--unanchored" in line and "Merge" in line


def test_unanchored_and_an_anchor_together_exit_2(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", "header", write(tmp_path, "b.json", BLOCK),
                       "--unanchored", *trusted(H(54)))
    assert code == 2 and "choose one" in one_line(err)


def test_unanchored_says_not_anchored_in_text_and_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "b.json", BLOCK)
    code, out, _ = run(capsys, "verify", "header", path, "--unanchored")
    assert code == 0 and out.startswith(f"self-consistent 54 {BLOCK['hash']} (NOT anchored)")
    assert "NOT anchored" in out.splitlines()[1]
    code, out, _ = run(capsys, "verify", "proof", "--block", path,
                       write(tmp_path, "p.json", PROOF), "--unanchored", "--json")
    report = json.loads(out)
    assert code == 0 and report["verified"] is False and report["anchored"] is False
    assert report["balance"] == "118"


def test_help_says_what_linking_proves(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "chain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "proves nothing after the Merge" in text and "backward" in text


# --- anchored backward ----------------------------------------------------------------

def test_an_ancestor_verifies_through_headers_linking_it_back_to_the_anchor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block40 = write(tmp_path, "b40.json", header_to_rpc(H(40)))
    between = headers_file(tmp_path, "between.json", [H(n) for n in range(41, 55)])
    code, out, err = run(capsys, "verify", "header", block40, *trusted(H(54)),
                         "--headers", between)
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == [f"verified 40 0x{H(40).hash.hex()}",
                                    f"  anchored by  block 54 0x{H(54).hash.hex()} "
                                    f"(user: --trusted)"]
    code, _, err = run(capsys, "verify", "header", block40, *trusted(H(54)))  # no link
    assert code == 1 and "header 40" in one_line(err) and "not anchored" in err


def test_a_descendant_of_the_anchor_is_not_verified(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", "header", write(tmp_path, "b.json", BLOCK),
                       *trusted(H(53)), "--headers", headers_file(tmp_path, "h.json", [H(53)]))
    line = one_line(err)
    assert code == 1 and "header 54" in line and "not anchored" in line


def test_hive_chain_anchored_at_its_last_block_verifies_back_to_genesis(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chain = headers_file(tmp_path, "chain.json", [H(n) for n in (54, *range(54))])  # any order
    store = tmp_path / "headers.sqlite"
    code, out, err = run(capsys, "verify", "chain", chain, *trusted(H(54)), "--chain",
                         str(execution_apis("genesis.json")),
                         "--store", str(store), "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["verified"] is True and report["headers"] == 55 and report["head"] == 54
    assert report["headHash"] == f"0x{H(54).hash.hex()}" and report["reorgs"] == []
    assert not any(r["rule"] == "excessBlobGas" for r in report["rulesNotChecked"])
    assert store.exists()


def test_hive_chain_anchored_at_block_40_leaves_41_not_anchored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chain = headers_file(tmp_path, "chain.json", [H(n) for n in range(55)])
    code, out, err = run(capsys, "verify", "chain", chain, *trusted(H(40)))
    line = one_line(err)
    assert (code, out) == (1, "")
    assert f"header 41 0x{H(41).hash.hex()} is not anchored" in line


# --- the attack: a fabricated child of a genuine block --------------------------------

def test_a_fabricated_child_is_refused_by_verify_chain(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forged = forged_sibling(54)
    chain = headers_file(tmp_path, "chain.json", [*(H(n) for n in range(50, 54)), forged])
    code, _, err = run(capsys, "verify", "chain", chain, *trusted(H(53)))
    assert code == 1 and f"header 54 0x{forged.hash.hex()} is not anchored" in one_line(err)


def test_a_longer_fabricated_branch_cannot_reorg_the_anchored_chain(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    branch = [forged_sibling(52, extra_data=b"forged")]
    for n in (53, 54):
        branch.append(dataclasses.replace(H(n), parent_hash=branch[-1].hash,
                                          extra_data=b"forged"))
    genuine = headers_file(tmp_path, "genuine.json", [H(n) for n in range(48, 54)])
    forged = headers_file(tmp_path, "forged.json", branch)
    code, _, err = run(capsys, "verify", "chain", genuine, forged, *trusted(H(53)))
    assert code == 1 and f"header 52 0x{branch[0].hash.hex()} is not anchored" in one_line(err)


def test_a_fabricated_block_proves_nothing_under_verify_proof(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forged = forged_sibling(54, state_root=H(54).state_root, extra_data=b"forged")
    block = write(tmp_path, "forged.json", forged_block_json(forged))
    proof = write(tmp_path, "p.json", PROOF)
    parent = headers_file(tmp_path, "h.json", [H(53)])
    code, _, err = run(capsys, "verify", "proof", "--block", block, proof, *trusted(H(53)),
                       "--headers", parent)
    assert code == 1 and "header 54" in one_line(err) and "not anchored" in err
    # the same data verifies only when the user anchors the fabricated hash itself
    code, out, _ = run(capsys, "verify", "proof", "--block", block, proof, *trusted(forged),
                       "--json")
    report = json.loads(out)
    assert code == 0 and report["anchor"]["hash"] == f"0x{forged.hash.hex()}"
    assert report["anchor"]["detail"] == "--trusted"


def test_the_fabricated_chain_verifies_only_with_its_own_explicit_anchor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forged = forged_sibling(54)
    chain = headers_file(tmp_path, "chain.json", [*(H(n) for n in range(50, 54)), forged])
    code, out, _ = run(capsys, "verify", "chain", chain, *trusted(forged))
    assert code == 0 and f"head 54 0x{forged.hash.hex()}" in out
    assert f"anchor  block 54 0x{forged.hash.hex()} (user: --trusted)" in out


def test_two_anchors_on_competing_branches_report_the_reorg(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forged = forged_sibling(54)
    chain = headers_file(tmp_path, "chain.json", [*(H(n) for n in range(50, 55)), forged])
    code, out, _ = run(capsys, "verify", "chain", chain, *trusted(H(54)), *trusted(forged))
    assert code == 0 and "reorg at 53: depth 1" in out


# --- the rules between parent and child -----------------------------------------------

def test_a_header_breaking_a_rule_exits_1_naming_the_rule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = dataclasses.replace(H(54), extra_data=b"x" * 33)
    chain = headers_file(tmp_path, "chain.json", [H(52), H(53), bad])
    code, _, err = run(capsys, "verify", "chain", chain, *trusted(bad))
    line = one_line(err)
    assert code == 1 and "extraData" in line and "header 54" in line
    code, _, err = run(capsys, "verify", "chain", chain, "--unanchored")
    assert code == 1 and "extraData" in one_line(err)


# --- numbers bounded where parsed; internal errors --------------------------------------

@pytest.mark.parametrize("value", ["18446744073709551616:0x" + "11" * 32, "-1:0x" + "11" * 32,
                                   "1:0x" + "11" * 31, "nan:0x" + "11" * 32])
def test_trusted_must_be_a_uint64_and_a_32_byte_hash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["verify", "header", write(tmp_path, "b.json", BLOCK), "--trusted", value])
    assert exc.value.code == 2
    assert "--trusted" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["verify", "lc", "--bootstrap", "x", "--unanchored", "--now", "nan"],
    ["verify", "lc", "--bootstrap", "x", "--unanchored", "--now", "inf"],
    ["verify", "lc", "--bootstrap", "x", "--unanchored", "--max-checkpoint-age", "inf"],
    ["verify", "lc", "--bootstrap", "x", "--unanchored", "--max-checkpoint-age", "NaN"],
    ["node", "lc-sync", "--beacon-url", "http://x", "--store", "s", "--now", "-inf"],
    ["link", "plan", "--tle", "t", "--out", "o", "--hours", "nan"],
    ["ground", "verify-command", "f", "--operators", "a", "--threshold", "1", "--satellite",
     "s", "--chain-id", str(2**64)],
])
def test_nan_inf_and_overflowing_numbers_exit_2_with_one_line(
        capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("orbital")


def test_verify_lc_without_a_trusted_root_or_unanchored_exits_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", "lc", "--bootstrap", "nowhere.json")
    assert code == 2 and "--trusted ROOT" in one_line(err) and "--unanchored" in err


def test_a_custom_beacon_config_without_its_genesis_validators_root_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_network(tmp_path)  # a valid config.yaml and its root file
    (tmp_path / "genesis_validators_root.txt").unlink()
    code, _, err = run(capsys, "verify", "lc", "--bootstrap", "x", "--unanchored",
                       "--network", str(tmp_path))
    assert code == 2 and "genesis_validators_root.txt" in one_line(err)


def test_an_internal_error_exits_70_with_one_line_and_the_traceback_only_with_debug(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(verify_cli, "verify_header", broken)
    path = write(tmp_path, "b.json", BLOCK)
    code, out, err = run(capsys, "verify", "header", path, *trusted(H(54)))
    assert (code, out) == (70, "")
    assert one_line(err).startswith("orbital: internal error: KeyError") and "--debug" in err
    code, _, err = run(capsys, "--debug", "verify", "header", path, *trusted(H(54)))
    assert code == 70 and "Traceback" in err and err.splitlines()[-1].startswith("orbital:")
