"""The audit log: the chain it writes, every kind of tampering on a real SQLite file
(edit, delete, insert, reorder, truncate, one flipped byte of the file), export for the
downlink and its verification against the ground's last head, durability and
concurrent appends."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_utils import keccak

from wallet.audit import (
    GENESIS_HASH,
    AuditChainError,
    AuditEntry,
    AuditHead,
    AuditLog,
    canonical_json,
    entry_digest,
    export,
    rotate,
    verify,
    verify_export,
)
from wallet.errors import AuditError, MalformedRequestError, SigningError
from wallet.keys.signer import SECP256K1_N, Signature

from signers import SoftwareSigner

T0 = 1_750_000_000.0


class Clock:
    """A settable clock advancing 1.5 s per reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


@pytest.fixture
def signer() -> SoftwareSigner:
    return SoftwareSigner("audit key", high_s=True)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite"


def fill(path: Path, signer: SoftwareSigner, count: int = 8) -> list[AuditEntry]:
    with AuditLog(path, signer, clock=Clock()) as log:
        return [log.append("policy_decision" if i % 2 else "signed",
                           {"n": i, "marker": f"entry-{i:04d}-payload", "ok": True})
                for i in range(1, count + 1)]


@pytest.fixture
def filled(path: Path, signer: SoftwareSigner) -> list[AuditEntry]:
    return fill(path, signer)


def sql(path: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Edit the file behind the log's back."""
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            if isinstance(statement, tuple):
                conn.execute(*statement)
            else:
                conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def broken(path: Path, **kwargs: Any) -> AuditChainError:
    with pytest.raises(AuditChainError) as raised:
        verify(path, **kwargs)
    return raised.value


# --------------------------------------------------------------------------- the chain

def test_entries_chain_and_sign(path: Path, signer: SoftwareSigner) -> None:
    entries = fill(path, signer, 3)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS_HASH
    assert entries[1].prev_hash == entries[0].entry_hash
    assert entries[2].time_ms == int((T0 + 6.0) * 1000)  # the first reading dates the log
    assert all(len(e.signature) == 65 for e in entries)
    head = verify(path, expected_signer=signer.address)
    assert head == entries[-1].head == AuditHead(3, entries[-1].entry_hash)


def test_the_entry_hash_is_the_documented_encoding(path: Path, signer: SoftwareSigner) -> None:
    with AuditLog(path, signer, clock=lambda: 1.2345) as log:
        entry = log.append("command", {"b": [1, 2], "a": "é"})
        log_id = log.log_id
    assert entry.payload == '{"a":"é","b":[1,2]}'.encode()
    body = rlp.encode([b"orbital-audit/1", log_id, 1, 1234, b"command", entry.payload,
                       bytes(32)])
    assert entry.entry_hash == keccak(b"\x19\x00" + signer.address + body)
    assert entry.entry_hash == entry_digest(signer.address, log_id, 1, 1234, b"command",
                                            entry.payload, bytes(32))
    s = int.from_bytes(entry.signature[32:64], "big")
    assert s <= SECP256K1_N // 2  # the high-s signer was normalised (EIP-2)
    assert entry.signature[64] in (27, 28)


def test_canonical_json() -> None:
    assert canonical_json({"z": 1, "a": {"y": b"\x01\x02", "x": None}, "m": "ü"}) == (
        '{"a":{"x":null,"y":"0x0102"},"m":"ü","z":1}'.encode())
    for bad in ({"x": float("nan")}, {"x": object()}, [1, 2]):
        with pytest.raises(MalformedRequestError):
            canonical_json(bad)  # type: ignore[arg-type]


def test_bad_appends_write_nothing(path: Path, signer: SoftwareSigner) -> None:
    with AuditLog(path, signer) as log:
        log.append("command", {"n": 1})
        for kind in ("", "Signed", "has space", "x" * 65, 7):
            with pytest.raises(MalformedRequestError):
                log.append(kind, {})  # type: ignore[arg-type]
        with pytest.raises(MalformedRequestError):
            log.append("command", {"x": float("inf")})

        class Broken:
            address = signer.address

            def sign_digest(self, digest: bytes) -> Signature:
                raise SigningError("token removed")

        log._signer = Broken()  # the HSM fails mid-run
        with pytest.raises(SigningError):
            log.append("command", {"n": 2})
        log._signer = signer
        assert log.append("command", {"n": 3}).seq == 2  # no seq was used up
    assert verify(path).seq == 2


def test_a_signer_that_returns_someone_elses_signature_is_refused(path: Path,
                                                                  signer: SoftwareSigner) -> None:
    class Lying:
        address = signer.address

        def sign_digest(self, digest: bytes) -> Signature:
            return SoftwareSigner("someone else").sign_digest(digest)

    with AuditLog(path, Lying()) as log, pytest.raises(SigningError):
        log.append("command", {})
    assert verify(path).seq == 0


def test_reopening_continues_the_chain(path: Path, signer: SoftwareSigner) -> None:
    first = fill(path, signer, 3)
    with AuditLog(path, signer) as log:
        assert log.head() == first[-1].head
        entry = log.append("command", {"again": True})
    assert entry.seq == 4 and entry.prev_hash == first[-1].entry_hash
    assert verify(path).seq == 4


def test_the_log_belongs_to_its_key(path: Path, signer: SoftwareSigner) -> None:
    fill(path, signer, 1)
    with pytest.raises(AuditError, match="belongs to 0x"):
        AuditLog(path, SoftwareSigner("another key"))


# --------------------------------------------------------------------------- tampering

@pytest.mark.parametrize(("edit", "seq", "problem"), [
    ("UPDATE entries SET payload = CAST(replace(CAST(payload AS TEXT), '\"n\":5', '\"n\":6') "
     "AS BLOB) WHERE seq = 5", 5, "do not match its hash"),
    ("UPDATE entries SET kind = 'command' WHERE seq = 3", 3, "do not match its hash"),
    ("UPDATE entries SET time_ms = time_ms + 1 WHERE seq = 4", 4, "do not match its hash"),
    ("UPDATE entries SET entry_hash = zeroblob(32) WHERE seq = 6", 6, "do not match its hash"),
    ("UPDATE entries SET prev_hash = zeroblob(32) WHERE seq = 2", 2, "prev_hash"),
    ("UPDATE entries SET signature = CASE WHEN substr(signature, 1, 1) = X'00' THEN X'01' "
     "ELSE X'00' END || substr(signature, 2) WHERE seq = 7", 7, "signature"),  # always a change
    ("UPDATE entries SET signature = substr(signature, 1, 64) WHERE seq = 2", 2,
     "signature is 64 bytes"),
    ("UPDATE entries SET payload = 5 WHERE seq = 3", 3, "wrong type"),
])
def test_edited_entries_are_found(filled: list[AuditEntry], path: Path, edit: str, seq: int,
                                  problem: str) -> None:
    sql(path, edit)
    error = broken(path)
    assert error.seq == seq
    assert problem in error.problem
    assert f"entry {seq}:" in str(error)


def test_a_flipped_signature_byte_is_found(filled: list[AuditEntry], path: Path) -> None:
    for byte in (0, 40, 64):  # in r, in s, in v
        raw = bytearray(filled[4].signature)
        raw[byte] ^= 0x01
        sql(path, ("UPDATE entries SET signature = ? WHERE seq = 5", (bytes(raw),)))
        error = broken(path)
        assert (error.seq, "signature" in error.problem) == (5, True), error
    sql(path, ("UPDATE entries SET signature = ? WHERE seq = 5", (filled[4].signature,)))
    assert verify(path).seq == 8


def test_the_high_s_twin_of_a_signature_is_refused(filled: list[AuditEntry],
                                                   path: Path) -> None:
    raw = filled[2].signature
    s = int.from_bytes(raw[32:64], "big")
    twin = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - raw[64]])
    sql(path, ("UPDATE entries SET signature = ? WHERE seq = 3", (twin,)))
    error = broken(path)
    assert error.seq == 3 and "high s" in error.problem


def test_a_deleted_entry_is_found(filled: list[AuditEntry], path: Path) -> None:
    sql(path, "DELETE FROM entries WHERE seq = 4")
    error = broken(path)
    assert error.seq == 4 and "entry 4 is missing" in error.problem
    sql(path, "DELETE FROM entries WHERE seq IN (5, 6)")
    assert "entries 4..6 are missing" in broken(path).problem


def test_the_first_entry_deleted_is_found(filled: list[AuditEntry], path: Path) -> None:
    sql(path, "DELETE FROM entries WHERE seq = 1")
    assert broken(path).seq == 1


def test_a_deletion_hidden_by_renumbering_is_found(filled: list[AuditEntry],
                                                   path: Path) -> None:
    sql(path, "DELETE FROM entries WHERE seq = 4",
        "UPDATE entries SET seq = seq - 1 WHERE seq > 4")
    error = broken(path)
    assert error.seq == 4 and "prev_hash" in error.problem


def test_a_forged_entry_with_a_correct_link_is_found(filled: list[AuditEntry], path: Path,
                                                     signer: SoftwareSigner) -> None:
    # appended at the end with the right prev_hash and hash, but not the log's key
    with AuditLog(path, signer) as log:
        log_id = log.log_id
    head = filled[-1]
    payload = canonical_json({"forged": True})
    digest = entry_digest(signer.address, log_id, 9, head.time_ms + 1, b"signed", payload,
                          head.entry_hash)
    forger = SoftwareSigner("forger")
    sql(path, ("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
               (9, head.time_ms + 1, "signed", payload, head.entry_hash, digest,
                forger.sign_digest(digest).to_bytes())))
    error = broken(path)
    assert error.seq == 9
    assert f"signature is by 0x{forger.address.hex()}, not the log's signer" in error.problem
    # and with garbage for a signature
    sql(path, ("UPDATE entries SET signature = ? WHERE seq = 9", (b"\x01" * 65,)))
    assert broken(path).seq == 9


def test_an_entry_inserted_in_the_middle_is_found(filled: list[AuditEntry],
                                                  path: Path) -> None:
    # make room after entry 3 and insert a copy of entry 3's link with new content
    sql(path, "UPDATE entries SET seq = seq + 100 WHERE seq > 3",
        "UPDATE entries SET seq = seq - 99 WHERE seq > 100",
        ("INSERT INTO entries VALUES (4, 1, 'signed', X'7B7D', ?, ?, ?)",
         (filled[2].entry_hash, b"\x00" * 32, filled[3].signature)))
    error = broken(path)
    assert error.seq == 4  # its hash and signature are wrong
    # the same row with a genuine entry's content re-used is caught by the next link
    sql(path, "DELETE FROM entries WHERE seq = 4",
        ("INSERT INTO entries VALUES (4, ?, ?, ?, ?, ?, ?)",
         (filled[3].time_ms, filled[3].kind, filled[3].payload, filled[3].prev_hash,
          filled[3].entry_hash, filled[3].signature)))
    error = broken(path)
    assert error.seq == 5 and "prev_hash" in error.problem


def test_reordered_entries_are_found(filled: list[AuditEntry], path: Path) -> None:
    sql(path, "UPDATE entries SET seq = -1 WHERE seq = 3",
        "UPDATE entries SET seq = 3 WHERE seq = 6",
        "UPDATE entries SET seq = 6 WHERE seq = -1")
    error = broken(path)
    assert error.seq == 3 and "prev_hash" in error.problem


def test_a_repeated_seq_is_found(filled: list[AuditEntry], path: Path) -> None:
    # a table rebuilt without the primary key, holding entry 5 twice
    sql(path, "CREATE TABLE copy AS SELECT * FROM entries",
        "INSERT INTO copy SELECT * FROM entries WHERE seq = 5",
        "DROP TABLE entries", "ALTER TABLE copy RENAME TO entries")
    error = broken(path)
    assert error.seq == 5 and "appears again" in error.problem


def test_a_truncated_tail_needs_the_known_head(filled: list[AuditEntry], path: Path) -> None:
    known = filled[-1].head  # what the ground verified last
    sql(path, "DELETE FROM entries WHERE seq > 6")
    assert verify(path) == filled[5].head  # a shorter log is valid on its own...
    error = broken(path, known_head=known)  # ...but no longer holds the known head
    assert error.seq == 8 and "truncated" in error.problem
    assert verify(path, known_head=filled[5].head) == filled[5].head
    assert verify(path, known_head=AuditHead(0, GENESIS_HASH)).seq == 6
    error = broken(path, known_head=AuditHead(5, b"\x07" * 32))
    assert error.seq == 5 and "rewritten" in error.problem


def test_a_running_log_notices_it_was_cut(filled: list[AuditEntry], path: Path,
                                          signer: SoftwareSigner) -> None:
    with AuditLog(path, signer) as log:
        log.append("command", {"n": 9})
        sql(path, "DELETE FROM entries WHERE seq = 9")
        with pytest.raises(AuditChainError, match="the log was cut or rewritten"):
            log.append("command", {"n": 10})
    assert verify(path).seq == 8


def test_a_damaged_head_stops_the_wallet(filled: list[AuditEntry], path: Path,
                                         signer: SoftwareSigner) -> None:
    sql(path, "UPDATE entries SET time_ms = 0 WHERE seq = 8")
    with pytest.raises(AuditChainError, match="head is damaged"):
        AuditLog(path, signer)


def test_a_log_resigned_by_another_key_needs_the_expected_signer(
        path: Path, signer: SoftwareSigner) -> None:
    fill(path, signer, 3)
    attacker = SoftwareSigner("attacker")
    with sqlite3.connect(path) as conn:
        log_id = bytes(conn.execute("SELECT value FROM meta WHERE key = 'log_id'").fetchone()[0])
        conn.execute("UPDATE meta SET value = ? WHERE key = 'signer'", (attacker.address,))
        prev = GENESIS_HASH
        for seq, time_ms, kind, payload in conn.execute(
                "SELECT seq, time_ms, kind, payload FROM entries ORDER BY seq").fetchall():
            digest = entry_digest(attacker.address, log_id, seq, time_ms, kind.encode(),
                                  payload, prev)
            conn.execute("UPDATE entries SET prev_hash = ?, entry_hash = ?, signature = ? "
                         "WHERE seq = ?",
                         (prev, digest, attacker.sign_digest(digest).to_bytes(), seq))
            prev = digest
    assert verify(path).seq == 3  # consistent with itself
    with pytest.raises(AuditError, match="not by the expected"):
        verify(path, expected_signer=signer.address)
    with pytest.raises(AuditError, match="belongs to 0x"):
        AuditLog(path, signer)


def test_an_edited_log_id_breaks_every_hash(filled: list[AuditEntry], path: Path) -> None:
    sql(path, ("UPDATE meta SET value = ? WHERE key = 'log_id'", (b"\x00" * 16,)))
    assert broken(path).seq == 1


def test_one_flipped_byte_of_the_database_file_is_found(filled: list[AuditEntry],
                                                        path: Path) -> None:
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    data = bytearray(path.read_bytes())
    marker = b"entry-0005-payload"
    at = data.find(marker)
    assert at > 0 and data.find(marker, at + 1) == -1  # the payload is stored once
    data[at + len("entry-000")] ^= 0x01  # '5' -> '4': still valid JSON and UTF-8
    path.write_bytes(bytes(data))
    error = broken(path)
    assert error.seq == 5 and "do not match its hash" in error.problem


@pytest.mark.parametrize("offset", [0, 16, 100])
def test_a_file_damaged_in_its_structure_is_refused(filled: list[AuditEntry], path: Path,
                                                    offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + 8] = b"\xff" * 8  # the header: magic, page size, counters
    path.write_bytes(bytes(data))
    with pytest.raises(AuditError):
        verify(path)


def test_verify_refuses_what_is_not_a_log(tmp_path: Path) -> None:
    with pytest.raises(MalformedRequestError, match="no audit log at"):
        verify(tmp_path / "missing.sqlite")
    other = tmp_path / "other.sqlite"
    sql(other, "CREATE TABLE t (x)")
    with pytest.raises(AuditError, match="not an audit log"):
        verify(other)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(AuditError):
        verify(garbage)
    with pytest.raises(AuditError):
        AuditLog(garbage, SoftwareSigner())


# --------------------------------------------------------------------------- export

def test_export_round_trip(filled: list[AuditEntry], path: Path,
                           signer: SoftwareSigner) -> None:
    doc = json.loads(json.dumps(export(path)))  # JSON all the way down
    assert doc["anchor"] == {"seq": 0, "hash": "0x" + "00" * 32}
    assert len(doc["entries"]) == 8
    assert doc["entries"][0] == filled[0].to_json()
    assert verify_export(doc, expected_signer=signer.address) == filled[-1].head
    assert verify_export(doc, known_head=AuditHead(0, GENESIS_HASH)) == filled[-1].head


def test_export_from_the_ground_head(filled: list[AuditEntry], path: Path,
                                     signer: SoftwareSigner) -> None:
    ground = filled[4].head  # the ground has verified up to entry 5
    doc = export(path, from_seq=6)
    assert doc["anchor"] == {"seq": 5, "hash": "0x" + ground.hash.hex()}
    assert [e["seq"] for e in doc["entries"]] == [6, 7, 8]
    assert verify_export(doc, known_head=ground, expected_signer=signer.address) == \
        filled[-1].head
    # an overlapping range must contain the known head unchanged
    assert verify_export(export(path, from_seq=3), known_head=ground) == filled[-1].head
    assert verify_export(export(path, from_seq=3, to_seq=6), known_head=ground) == \
        filled[5].head
    # nothing new: an empty export anchored at the head
    empty = export(path, from_seq=9)
    assert empty["entries"] == [] and verify_export(empty, known_head=filled[-1].head) == \
        filled[-1].head


def test_an_export_that_does_not_continue_the_known_head_is_refused(
        filled: list[AuditEntry], path: Path) -> None:
    with pytest.raises(AuditChainError, match="would be skipped; export --from 4"):
        verify_export(export(path, from_seq=6), known_head=filled[2].head)
    with pytest.raises(AuditChainError, match="rewritten"):
        verify_export(export(path, from_seq=6), known_head=AuditHead(5, b"\x01" * 32))
    with pytest.raises(AuditChainError, match="rewritten"):
        verify_export(export(path, from_seq=3), known_head=AuditHead(5, b"\x01" * 32))
    with pytest.raises(AuditChainError, match="truncated"):
        verify_export(export(path, from_seq=3, to_seq=4), known_head=filled[5].head)


def _tamper(doc: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copy = json.loads(json.dumps(doc))
    change(copy)
    return copy


def _flip_payload(doc: dict[str, Any]) -> None:
    entry = doc["entries"][1]
    entry["payload"] = "0x" + bytes.fromhex(entry["payload"][2:]).replace(
        b'"ok":true', b'"ok":null').hex()


@pytest.mark.parametrize(("change", "seq"), [
    (_flip_payload, 4),
    (lambda d: d["entries"][0].update(kind="command"), 3),
    (lambda d: d["entries"][2].update(time_ms=d["entries"][2]["time_ms"] - 1), 5),
    (lambda d: d["entries"][2].update(signature="0x" + "11" * 65), 5),
    (lambda d: d["entries"].pop(1), 4),
    (lambda d: d["entries"].reverse(), 3),
    (lambda d: d["entries"].insert(2, d["entries"][1]), 4),  # entry 4 twice
    (lambda d: d["anchor"].update(hash="0x" + "22" * 32), 3),
    (lambda d: d["entries"].pop(), 8),  # the claimed head gives the cut away
    (lambda d: d["head"].update(seq=9), 9),
    (lambda d: d.update(log_id="0x" + "00" * 16), 3),
])
def test_a_tampered_export_is_refused(filled: list[AuditEntry], path: Path,
                                      change: Callable[[dict[str, Any]], None],
                                      seq: int) -> None:
    doc = export(path, from_seq=3)
    with pytest.raises(AuditChainError) as raised:
        verify_export(_tamper(doc, change))
    assert raised.value.seq == seq, raised.value


def test_an_export_by_another_key_or_malformed_is_refused(filled: list[AuditEntry],
                                                          path: Path) -> None:
    doc = export(path)
    with pytest.raises(AuditError, match="not by the expected"):
        verify_export(doc, expected_signer=b"\x01" * 20)
    for change in (lambda d: d.pop("format"), lambda d: d.update(entries={}),
                   lambda d: d["entries"][0].update(payload="zz"),
                   lambda d: d["entries"][0].update(seq="1"),
                   lambda d: d.update(signer="0x1234"), lambda d: d.pop("anchor")):
        with pytest.raises(MalformedRequestError):
            verify_export(_tamper(doc, change))
    with pytest.raises(AuditChainError, match="zero hash"):
        verify_export(_tamper(doc, lambda d: d["anchor"].update(hash="0x" + "01" * 32)))


def test_export_ranges_are_checked(filled: list[AuditEntry], path: Path) -> None:
    for from_seq in (0, -1, 10):
        with pytest.raises(MalformedRequestError):
            export(path, from_seq=from_seq)
    with pytest.raises(MalformedRequestError):
        export(path, from_seq=5, to_seq=2)


def test_audit_head_text_form() -> None:
    head = AuditHead(12, bytes(range(32)))
    assert AuditHead.parse(str(head)) == head
    assert AuditHead.parse("12:" + bytes(range(32)).hex()) == head
    for bad in ("12", "x:00", "-1:" + "00" * 32, "1:" + "00" * 31):
        with pytest.raises(MalformedRequestError):
            AuditHead.parse(bad)


# --------------------------------------------------------------------------- durability

def test_append_returns_only_once_committed(path: Path, signer: SoftwareSigner) -> None:
    with AuditLog(path, signer) as log:
        for n in range(3):
            entry = log.append("command", {"n": n})
            other = sqlite3.connect(path)  # another reader, right after append returned
            try:
                row = other.execute("SELECT entry_hash FROM entries WHERE seq = ?",
                                    (entry.seq,)).fetchone()
            finally:
                other.close()
            assert row is not None and bytes(row[0]) == entry.entry_hash
        mode = log._conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = log._conn.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == (b"wal", 2)  # 2 = FULL


def test_entries_survive_a_process_killed_after_append(path: Path) -> None:
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from signers import SoftwareSigner
from wallet.audit import AuditLog
log = AuditLog({str(path)!r}, SoftwareSigner("child"))
for n in range(5):
    log.append("command", {{"n": n}})
print(log.head(), flush=True)
os._exit(0)  # no close, no checkpoint
"""
    root = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                          text=True, timeout=60, check=True)
    head = AuditHead.parse(done.stdout)
    assert verify(path, expected_signer=SoftwareSigner("child").address, known_head=head) == head


def test_concurrent_appends_make_one_gap_free_chain(path: Path,
                                                    signer: SoftwareSigner) -> None:
    threads, per_thread = 4, 25
    with AuditLog(path, signer) as shared, AuditLog(path, signer) as second:
        barrier = threading.Barrier(threads)
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            log = shared if worker % 2 else second  # two connections, one file
            try:
                barrier.wait()
                for n in range(per_thread):
                    log.append("command", {"worker": worker, "n": n})
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        assert errors == []
    head = verify(path, expected_signer=signer.address)
    assert head.seq == threads * per_thread
    with AuditLog(path, signer) as log:
        payloads = [e.payload_json() for e in log.entries()]
    assert sorted((p["worker"], p["n"]) for p in payloads) == sorted(
        (w, n) for w in range(threads) for n in range(per_thread))



# --------------------------------------------------------------------------- rotation


def test_rotating_a_damaged_log_keeps_it_and_links_the_new_one(
        filled: list[AuditEntry], path: Path, signer: SoftwareSigner) -> None:
    sql(path, "UPDATE entries SET time_ms = 0 WHERE seq = 8")
    with pytest.raises(AuditChainError, match="head is damaged"):
        AuditLog(path, signer)  # signing has stopped
    damaged = path.read_bytes()
    done = rotate(path, signer, "head damaged after a radiation upset", clock=Clock())
    assert done.previous_head is None and "entry 8" in (done.problem or "")
    assert done.archived[0].read_bytes() == damaged  # kept as evidence, byte for byte
    assert done.archived[0].name.startswith(path.stem + "-retired-")
    first = done.first
    assert (first.seq, first.kind) == (1, "log_rotated")
    payload = first.payload_json()
    assert payload["reason"] == "head damaged after a radiation upset"
    assert payload["previous_file"] == done.archived[0].name
    assert payload["previous_head"] is None and "entry 8" in payload["previous_problem"]
    assert verify(path).seq == 1
    with AuditLog(path, signer) as log:  # signing works again, on the new log
        assert log.append("signed", {"n": 1}).seq == 2


def test_rotating_a_healthy_log_records_its_head(filled: list[AuditEntry], path: Path,
                                                 signer: SoftwareSigner) -> None:
    head = verify(path)
    done = rotate(path, signer, "scheduled rotation", clock=Clock())
    assert done.previous_head == head and done.problem is None
    assert done.first.payload_json()["previous_head"] == str(head)
    assert verify(done.archived[0]) == head  # the retired log still verifies on its own


@pytest.mark.parametrize("reason", ["", "   ", "two\nlines"])
def test_a_rotation_needs_a_one_line_reason(filled: list[AuditEntry], path: Path,
                                            signer: SoftwareSigner, reason: str) -> None:
    with pytest.raises(MalformedRequestError, match="one-line reason"):
        rotate(path, signer, reason)
    assert verify(path).seq == 8  # nothing moved


def test_rotating_nothing_is_refused(tmp_path: Path, signer: SoftwareSigner) -> None:
    with pytest.raises(AuditError, match="no audit log at"):
        rotate(tmp_path / "absent.sqlite", signer, "why")
