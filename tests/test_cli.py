"""``orbital verify``: exit codes, one-line errors, --json, on the hive chain's answers
written to files (as a bare ``result`` and as a whole JSON-RPC response)."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main

from vectors import hive_latest, io_case

REPO = Path(__file__).resolve().parents[1]
BLOCK = hive_latest()
BLOCK_HASH = BLOCK["hash"]
PROOF = io_case("eth_getProof", "get-account-proof-with-storage").result
RECEIPTS = io_case("eth_getBlockReceipts", "get-block-receipts-latest").result
TRUST = ("--trusted", f"54:{BLOCK_HASH}")  # block 54 is the anchor of most cases here


def write(tmp_path: Path, name: str, result: Any, envelope: bool = False) -> str:
    """Write ``result`` as a file; with ``envelope`` as a whole JSON-RPC response."""
    path = tmp_path / name
    body = {"jsonrpc": "2.0", "id": 1, "result": result} if envelope else result
    path.write_text(json.dumps(body))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {err!r}"
    assert "Traceback" not in err
    return lines[0]


# --- success --------------------------------------------------------------------------

@pytest.mark.parametrize("envelope", [False, True], ids=["bare", "envelope"])
@pytest.mark.parametrize("case", ["get-genesis", "get-block-london-fork", "get-latest"])
def test_verify_header_prints_verified_number_and_hash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, envelope: bool) -> None:
    block = io_case("eth_getBlockByNumber", case).result
    code, out, err = run(capsys, "verify", "header", write(tmp_path, "b.json", block, envelope),
                         "--trusted", f"{block['number']}:{block['hash']}")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"verified {int(block['number'], 16)} {block['hash']}"
    assert out.splitlines()[1].startswith(f"  anchored by  block {int(block['number'], 16)} ")


@pytest.mark.parametrize("envelope", [False, True], ids=["bare", "envelope"])
def test_verify_proof_prints_the_proven_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], envelope: bool) -> None:
    code, out, err = run(capsys, "verify", "proof",
                         "--block", write(tmp_path, "b.json", BLOCK, envelope),
                         write(tmp_path, "p.json", PROOF, envelope), *TRUST)
    assert (code, err) == (0, "")
    assert out.startswith(f"verified account {PROOF['address']} at block 54 {BLOCK_HASH}")
    assert "balance      118 wei" in out
    assert f"storageHash  {PROOF['storageHash']}" in out
    assert f"storage[0x{'00' * 32}] = 0x38" in out


@pytest.mark.parametrize("envelope", [False, True], ids=["bare", "envelope"])
def test_verify_block_with_receipts_checks_every_root(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], envelope: bool) -> None:
    code, out, err = run(capsys, "verify", "block", write(tmp_path, "b.json", BLOCK, envelope),
                         "--receipts", write(tmp_path, "r.json", RECEIPTS, envelope), *TRUST)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"verified 54 {BLOCK_HASH}"
    for name in ("transactionsRoot", "receiptsRoot", "logsBloom", "gasUsed"):
        assert f"  ok           {name}" in lines
    assert any(line.startswith("  not checked  requestsHash") for line in lines)


def test_verify_block_without_receipts_says_receipts_root_is_not_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "verify", "block", write(tmp_path, "b.json", BLOCK), *TRUST)
    assert code == 0
    assert "  not checked  receiptsRoot: no receipts given" in out.splitlines()


def test_verify_header_reads_standard_input(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(BLOCK).encode())))
    code, out, _err = run(capsys, "verify", "header", "-", *TRUST)
    assert code == 0 and out.startswith(f"verified 54 {BLOCK_HASH}\n")


# --- mismatches: exit 1, one line naming the field and both values --------------------

def _tampered_header() -> tuple[dict[str, Any], str, str]:
    block = copy.deepcopy(BLOCK)
    block["stateRoot"] = "0x" + "00" * 32
    return block, "hash", BLOCK_HASH


def _tampered_from() -> tuple[dict[str, Any], str, str]:
    block = copy.deepcopy(BLOCK)
    block["transactions"][1]["from"] = "0x" + "11" * 20
    return block, "transactions[1].from", BLOCK["transactions"][1]["from"]


def test_tampered_header_exits_1_with_one_line_naming_hash_and_both_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block, field, claimed = _tampered_header()
    code, out, err = run(capsys, "verify", "header", write(tmp_path, "b.json", block), *TRUST)
    assert (code, out) == (1, "")
    line = one_error_line(err)
    assert line.startswith(f"orbital: verification failed: {field} mismatch")
    assert claimed in line and "computed 0x" in line


def test_tampered_transaction_exits_1_naming_the_field_and_both_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block, field, real = _tampered_from()
    code, _out, err = run(capsys, "verify", "block", write(tmp_path, "b.json", block), *TRUST)
    line = one_error_line(err)
    assert code == 1 and field in line
    assert "0x" + "11" * 20 in line and real in line


def test_tampered_receipt_exits_1_naming_receipts_root(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    receipts = copy.deepcopy(RECEIPTS)
    receipts[1]["logs"][0]["data"] = "0x" + "00" * 32
    code, _out, err = run(capsys, "verify", "block", write(tmp_path, "b.json", BLOCK),
                          "--receipts", write(tmp_path, "r.json", receipts), *TRUST)
    line = one_error_line(err)
    assert code == 1 and "receiptsRoot mismatch" in line and BLOCK["receiptsRoot"] in line


@pytest.mark.parametrize("field, value, shown", [
    ("balance", "0x77", ("claimed 119", "computed 118")),
    ("nonce", "0x5", ("claimed 5", "computed 0")),
    ("codeHash", "0x" + "22" * 32, ("0x" + "22" * 32, PROOF["codeHash"])),
])
def test_tampered_proof_exits_1_naming_the_field_and_both_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: str,
        shown: tuple[str, str]) -> None:
    proof = {**PROOF, field: value}
    code, _out, err = run(capsys, "verify", "proof", "--block", write(tmp_path, "b.json", BLOCK),
                          write(tmp_path, "p.json", proof), *TRUST)
    line = one_error_line(err)
    assert code == 1 and f"{field} mismatch" in line
    assert all(s in line for s in shown)


def test_proof_against_another_blocks_header_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = io_case("eth_getBlockByNumber", "get-block-prague-fork").result
    code, _out, err = run(capsys, "verify", "proof", "--block", write(tmp_path, "b.json", other),
                          write(tmp_path, "p.json", PROOF), "--trusted",
                          f"{other['number']}:{other['hash']}")
    assert code == 1 and "accountProof" in one_error_line(err)


# --- malformed input: exit 2, one line, no traceback ----------------------------------

def _raw(text: str | bytes) -> Any:
    return lambda path: path.write_bytes(text if isinstance(text, bytes) else text.encode())


def _json(value: Any) -> Any:
    return lambda path: path.write_text(json.dumps(value))


def _block_with(field: str, value: Any) -> Any:
    block = copy.deepcopy(BLOCK)
    if value is None:
        del block[field]
    else:
        block[field] = value
    return _json(block)


MALFORMED_FILES = {
    "not-json": _raw("this is not json"),
    "truncated-json": _raw(json.dumps(BLOCK)[:100]),
    "empty-file": _raw(""),
    "binary": _raw(b"\xff\xfe\x00\x01garbage"),
    "missing-field": _block_with("stateRoot", None),
    "bad-hex": _block_with("stateRoot", "0x" + "zz" * 32),
    "wrong-length": _block_with("stateRoot", "0x" + "00" * 20),
    "number-as-json-number": _block_with("number", 54),
    "rpc-error-envelope": _json({"jsonrpc": "2.0", "id": 1,
                                 "error": {"code": -32000, "message": "header not found"}}),
    "rpc-envelope-without-result": _json({"jsonrpc": "2.0", "id": 1}),
    "null-result": _json({"jsonrpc": "2.0", "id": 1, "result": None}),
    "bare-null": _raw("null"),
    "json-list": _json([BLOCK]),
    "json-string": _json("0x00"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_FILES))
@pytest.mark.parametrize("kind", ["header", "block"])
def test_malformed_file_exits_2_with_one_line_and_no_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, name: str) -> None:
    path = tmp_path / "b.json"
    MALFORMED_FILES[name](path)
    code, out, err = run(capsys, "verify", kind, str(path), "--unanchored")
    assert (code, out) == (2, "")
    assert one_error_line(err).startswith("orbital: malformed input: ")


@pytest.mark.parametrize("target", ["missing-file", "directory"])
def test_unreadable_file_exits_2_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str) -> None:
    path = tmp_path / "nowhere.json" if target == "missing-file" else tmp_path
    code, _out, err = run(capsys, "verify", "header", str(path), *TRUST)
    assert code == 2 and str(path) in one_error_line(err)


def test_malformed_proof_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proof = {**PROOF, "accountProof": ["0xzz"]}
    code, _out, err = run(capsys, "verify", "proof", "--block", write(tmp_path, "b.json", BLOCK),
                          write(tmp_path, "p.json", proof), *TRUST)
    assert code == 2 and "accountProof[0]" in one_error_line(err)


def test_malformed_receipts_file_exits_2(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "verify", "block", write(tmp_path, "b.json", BLOCK),
                          "--receipts", write(tmp_path, "r.json", {"not": "a list"}), *TRUST)
    assert code == 2
    one_error_line(err)


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["verify", "header"])
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


# --- --json ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, keys", [
    (["header", "{b}"], {"verified", "number", "hash", "fork"}),
    (["block", "{b}", "--receipts", "{r}"], {"verified", "checked", "notChecked", "receipts"}),
    (["proof", "--block", "{b}", "{p}"], {"verified", "balance", "storage", "exists"}),
])
def test_json_output_on_success(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                argv: list[str], keys: set[str]) -> None:
    files = {"b": write(tmp_path, "b.json", BLOCK), "r": write(tmp_path, "r.json", RECEIPTS),
             "p": write(tmp_path, "p.json", PROOF)}
    code, out, _err = run(capsys, "verify", *[a.format(**files) for a in argv], "--json",
                          *TRUST)
    report = json.loads(out)
    assert code == 0 and report["verified"] is True and keys <= set(report)
    assert report["anchored"] is True and report["anchor"]["number"] == 54
    assert report["anchor"]["source"] == "user"


def test_json_output_on_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block, field, real = _tampered_from()
    code, out, err = run(capsys, "verify", "block", write(tmp_path, "b.json", block), "--json",
                         *TRUST)
    report = json.loads(out)
    assert code == 1 and report["verified"] is False and report["field"] == field
    assert (report["claimed"], report["computed"]) == ("0x" + "11" * 20, real)
    one_error_line(err)


def test_json_output_on_malformed_input(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "b.json"
    path.write_text("{")
    code, out, _err = run(capsys, "verify", "header", str(path), "--json", *TRUST)
    report = json.loads(out)
    assert code == 2 and report["verified"] is False
    assert report["kind"] == "MalformedInputError" and str(path) in report["error"]


# --- a real process -------------------------------------------------------------------

def run_process(*argv: str) -> tuple[int, str, str]:
    """``python -m node.cli.main ARGV`` in a fresh interpreter (default recursion limit)."""
    done = subprocess.run([sys.executable, "-m", "node.cli.main", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_real_process_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{\"number\": ")
    good = run_process("verify", "header", write(tmp_path, "good.json", BLOCK, envelope=True),
                       *TRUST)
    bad = run_process("verify", "header", write(tmp_path, "bad.json", _tampered_header()[0]),
                      *TRUST)
    malformed = run_process("verify", "header", str(broken), *TRUST)
    assert good[0] == 0 and good[1].startswith(f"verified 54 {BLOCK_HASH}\n") and not good[2]
    assert bad[0] == 1 and malformed[0] == 2
    for _code, out, err in (bad, malformed):
        assert out == "" and len(err.splitlines()) == 1 and "Traceback" not in err


def test_real_process_refuses_deeply_nested_json_as_malformed(tmp_path: Path) -> None:
    """100 000 nested '[' make json.loads raise RecursionError, which nothing catches: the
    process dies with a traceback and exit code 1 ("verification failed"). Run in a
    subprocess because in a process whose recursion limit was raised (py_ecc sets 100 000
    on import) the same input overflows the C stack and segfaults."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    code, out, err = run_process("verify", "header", str(deep), *TRUST)
    assert "Traceback" not in err
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.startswith("orbital: malformed input: ")


# --- verify chain: see tests/test_cli_anchoring.py ----------------------------------


# --- demo -----------------------------------------------------------------------------

def test_demo_verifies_the_bundled_devnet_data_and_refuses_every_tampering(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo", "--offline")
    assert (code, err) == (0, "")
    assert "EIP-2930, EIP-1559, EIP-7702" in out
    assert "a fabricated child of the head (any stateRoot) links but is NOT anchored" in out
    # 6 tamperings, 1 policy refusal, 1 forged attestation
    assert out.count(" refused: ") == 8 and "ACCEPTED" not in out and "bug" not in out
    assert "sender recovered by the chain core: ok" in out
    assert "2 ether: refused: policy denied (per_transaction)" in out
    assert "one byte of the audit database edited: detected" in out
    assert "8 of 8 match the labels" in out
    assert "SAT-1, SAT-2 re-executed: same bytes, co-signed" in out
    assert "certificate 3-of-3 on every satellite" in out and ": identical," in out
    assert "forged attestation (unregistered key): refused" in out
    # per satellite: the task result recorded before it is signed (#16 item 11), the
    # policy's decision, the signature
    assert "audit logs: 9 entries verified across 3 satellites" in out
    assert out.rstrip().endswith("certified a re-executed AI task over gossip")


# --- input limits ---------------------------------------------------------------------

def test_json_nested_too_deep_is_malformed_in_process(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run(capsys, "verify", "header", str(path), *TRUST)
    assert code == 2
    assert "nested deeper than" in one_error_line(err)


def test_brackets_inside_strings_do_not_count_as_nesting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block = dict(BLOCK, note='[{"' + "[" * 500 + '\\"')
    code, out, _ = run(capsys, "verify", "header", write(tmp_path, "b.json", block), *TRUST)
    assert code == 0 and out.startswith("verified 54")
