"""node.tasks: the committed digits model, bit-exact integer inference, the weights format's
validation, and task derivations."""

from __future__ import annotations

import ast
import inspect
import json
import struct
import textwrap
from pathlib import Path

import numpy as np
import pytest

from node.chain.hashing import keccak256
from node.tasks import model as qmodel
from node.tasks.model import Layer, Model, ModelError
from node.tasks.task import (
    Task,
    TaskError,
    TaskInputError,
    TaskOutput,
    WrongModelError,
    derive_task_id,
    run,
)

TASKS = Path(qmodel.__file__).resolve().parent
EXPECTED = TASKS / "expected"
WEIGHTS = TASKS / "weights" / "digits-int8.bin"

MODEL_HASH = "9060da005bda8383623b226e972d8e75f11c847b944de084c8cb2f6ea8554f14"
"""keccak256 of the committed weights file (changes only when the model is retrained)."""


@pytest.fixture(scope="module")
def model() -> Model:
    return qmodel.load()


@pytest.fixture(scope="module")
def weights() -> bytes:
    return WEIGHTS.read_bytes()


@pytest.fixture(scope="module")
def fixed() -> tuple[bytes, bytes, dict]:
    return ((EXPECTED / "digits-inputs.bin").read_bytes(),
            (EXPECTED / "digits-outputs.bin").read_bytes(),
            json.loads((EXPECTED / "digits.json").read_text()))


# -- the committed model and its pinned outputs --------------------------------------------------


def test_committed_model_hash_is_the_pinned_value(model: Model, weights: bytes) -> None:
    assert keccak256(weights).hex() == MODEL_HASH
    assert model.model_hash == qmodel.model_hash(weights) == qmodel.DIGITS_MODEL_HASH
    meta = json.loads(WEIGHTS.with_suffix(".json").read_text())
    assert meta["model_hash"] == "0x" + MODEL_HASH and meta["size_bytes"] == len(weights)
    assert [(layer.in_dim, layer.out_dim) for layer in model.layers] == [(64, 32), (32, 10)]
    assert (model.input_size, model.input_max, model.n_classes) == (64, 16, 10)
    assert model.output_record_size == qmodel.OUTPUT_RECORD_SIZE == 41


def test_fixed_inputs_give_the_committed_output_bytes(model: Model, fixed) -> None:
    inputs, outputs, meta = fixed
    assert len(inputs) == 64 * 64 and len(outputs) == 64 * 41
    assert meta["model_hash"] == "0x" + MODEL_HASH
    assert "0x" + keccak256(inputs).hex() == meta["input_hash"]
    out = qmodel.infer(model, inputs)
    assert out == outputs
    assert "0x" + keccak256(out).hex() == meta["output_hash"]


def test_fixed_digits_are_mostly_classified_right(model: Model, fixed) -> None:
    _, outputs, meta = fixed
    predicted = qmodel.predicted_classes(model, outputs)
    labels = meta["labels"]
    assert sum(p == t for p, t in zip(predicted, labels, strict=False)) >= 57


def _reference_infer(weights: bytes, inputs: bytes) -> bytes:
    """An independent reading of the file and of the arithmetic: struct and Python ints."""
    _, _, n_layers, size, _ = struct.unpack_from(">4sHHII", weights, 0)
    pos, layers = 16, []
    for _ in range(n_layers):
        n_in, n_out, _, mult, shift = struct.unpack_from(">IIIII", weights, pos)
        pos += 20
        w = [list(struct.unpack_from(f">{n_in}b", weights, pos + o * n_in)) for o in range(n_out)]
        pos += n_in * n_out
        b = list(struct.unpack_from(f">{n_out}i", weights, pos))
        pos += 4 * n_out
        layers.append((w, b, mult, shift))
    out = b""
    for r in range(0, len(inputs), size):
        act = list(inputs[r:r + size])
        for w, b, mult, shift in layers:
            acc = [sum(wi * ai for wi, ai in zip(row, act, strict=True)) + bias
                   for row, bias in zip(w, b, strict=True)]
            assert all(-(2**31) <= a < 2**31 for a in acc)
            act = ([min(max((a * mult + (1 << (shift - 1))) >> shift, 0), 127) for a in acc]
                   if mult else acc)
        best = max(range(len(act)), key=lambda i: (act[i], -i))
        out += b"".join(v.to_bytes(4, "big", signed=True) for v in act) + bytes([best])
    return out


def test_numpy_inference_equals_a_pure_python_reference(model: Model, weights: bytes,
                                                        fixed) -> None:
    inputs, outputs, _ = fixed
    assert _reference_infer(weights, inputs) == outputs == qmodel.infer(model, inputs)


def test_batch_and_single_inference_agree(model: Model, fixed) -> None:
    inputs, outputs, _ = fixed
    singles = [qmodel.infer(model, inputs[i:i + 64]) for i in range(0, len(inputs), 64)]
    assert b"".join(singles) == outputs
    images = np.frombuffer(inputs, dtype=np.uint8).reshape(-1, 64)
    assert qmodel.infer_batch(model, images) == singles
    assert qmodel.infer_batch(model, images.astype(np.int64)[::-1]) == singles[::-1]


# -- no floats on the inference path ------------------------------------------------------------


def test_every_intermediate_array_is_an_integer(model: Model, fixed) -> None:
    inputs, _, _ = fixed
    for layer in model.layers:
        assert layer.weights.dtype == np.int8 and layer.biases.dtype == np.int32
    x = qmodel.parse_inputs(model, inputs)
    trace: list[np.ndarray] = []
    with np.errstate(all="raise"):
        logits = qmodel.forward(model, x, trace)
    assert x.dtype == np.int32 and logits.dtype == np.int32
    assert len(trace) == 4
    assert all(np.issubdtype(a.dtype, np.integer) for a in trace)


@pytest.mark.parametrize("fn", [qmodel.parse_inputs, qmodel.forward, qmodel.encode_outputs,
                                qmodel.infer, qmodel.infer_batch])
def test_inference_code_has_no_float_operations(fn) -> None:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), node
        assert not isinstance(node, ast.Div | ast.Pow), ast.dump(node)
        if isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            assert not name.startswith(("float", "double", "half")), name


# -- integer semantics on small hand-made models -------------------------------------------------


def _tiny(multiplier: int, shift: int, w1: list[list[int]], b1: list[int],
          w2: list[list[int]], b2: list[int], input_max: int = 16) -> Model:
    layers = [Layer(np.array(w1, np.int8), np.array(b1, np.int32), multiplier, shift),
              Layer(np.array(w2, np.int8), np.array(b2, np.int32), 0, 0)]
    n_in = len(w1[0])
    return qmodel.decode(qmodel.encode(layers, input_size=n_in, input_max=input_max))


def _logits(out: bytes) -> list[int]:
    return [int.from_bytes(out[i:i + 4], "big", signed=True) for i in range(0, len(out) - 1, 4)]


@pytest.mark.parametrize(("pixel", "bias", "hidden"), [
    (1, 0, 1),    # 0.5 rounds up
    (3, 0, 2),    # 1.5 rounds up
    (2, 0, 1),
    (0, -1, 0),   # -0.5 -> 0 (ReLU)
    (0, -3, 0),   # negative -> 0 (ReLU)
    (16, 300, 127),  # (16 + 300) / 2 clamps at 127
])
def test_requantisation_rounds_half_up_and_clamps(pixel: int, bias: int, hidden: int) -> None:
    # multiplier / 2**shift = 2**30 / 2**31 = 0.5; output logit = hidden activation.
    m = _tiny(2**30, 31, [[1]], [bias], [[1], [-1]], [0, 0])
    out = qmodel.infer(m, bytes([pixel]))
    assert _logits(out) == [hidden, -hidden]


def test_argmax_tie_goes_to_the_lowest_index() -> None:
    m = _tiny(2**30, 31, [[1]], [0], [[0], [2], [2], [1]], [5, 3, 3, 4])
    out = qmodel.infer(m, bytes([2, 0]))   # two records: hidden 1 and 0
    assert _logits(out[:17]) == [5, 5, 5, 5] and out[16] == 0
    assert _logits(out[17:]) == [5, 3, 3, 4] and out[33] == 0
    m = _tiny(2**30, 31, [[1]], [0], [[0], [2], [2], [1]], [0, 3, 3, 4])
    assert qmodel.infer(m, bytes([2]))[-1] == 1


def test_logits_are_big_endian_twos_complement() -> None:
    m = _tiny(2**30, 31, [[1]], [0], [[1], [-1]], [-(2**31) + 200, 2**31 - 200])
    out = qmodel.infer(m, bytes([2]))
    assert out[:8] == (-(2**31) + 201).to_bytes(4, "big", signed=True) + \
        (2**31 - 201).to_bytes(4, "big", signed=True)
    assert out[8] == 1


# -- input validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "match"), [
    (b"", "positive multiple of 64"),
    (bytes(63), "positive multiple of 64"),
    (bytes(65), "positive multiple of 64"),
    (bytes(64 + 10) + b"\x11" + bytes(53), "record 1 value 10 is 17"),
    (b"\xff" * 64, "record 0 value 0 is 255"),
])
def test_bad_inputs_are_refused(model: Model, data: bytes, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        qmodel.infer(model, data)


def test_bad_batches_are_refused(model: Model) -> None:
    with pytest.raises(ModelError, match="shape"):
        qmodel.infer_batch(model, np.zeros((2, 63), np.uint8))
    with pytest.raises(ModelError, match="integers"):
        qmodel.infer_batch(model, np.zeros((2, 64), np.float64))
    with pytest.raises(ModelError, match=r"0\.\.16"):
        qmodel.infer_batch(model, np.full((1, 64), -1, np.int64))


# -- malformed weights files -----------------------------------------------------------------------


def _patch(data: bytes, offset: int, fmt: str, value: int | bytes) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


HIDDEN_HDR = 16
OUTPUT_HDR = 16 + 20 + 64 * 32 + 4 * 32


@pytest.mark.parametrize(("offset", "fmt", "value", "match"), [
    (0, ">4s", b"OQNX", "magic"),
    (4, ">H", 2, "version 2"),
    (6, ">H", 0, "0 layers"),
    (6, ">H", 9, "9 layers"),
    (8, ">I", 0, "input_size 0"),
    (12, ">I", 0, "input_max 0"),
    (12, ">I", 256, "input_max 256"),
    (HIDDEN_HDR, ">I", 63, "layer 0: in_dim 63"),
    (HIDDEN_HDR + 8, ">I", 0, "layer 0: a hidden layer must requantise"),
    (HIDDEN_HDR + 8, ">I", 3, "unknown flags"),
    (HIDDEN_HDR + 12, ">I", 0, "multiplier 0"),
    (HIDDEN_HDR + 12, ">I", 2**31, "multiplier"),
    (HIDDEN_HDR + 16, ">I", 0, "shift 0"),
    (HIDDEN_HDR + 16, ">I", 63, "shift 63"),
    (OUTPUT_HDR, ">I", 31, "layer 1: in_dim 31"),
    (OUTPUT_HDR + 8, ">I", 1, "output layer must not requantise"),
    (OUTPUT_HDR + 16, ">I", 5, "output layer must not requantise"),
    (OUTPUT_HDR + 4, ">I", 11, "truncated in layer 1"),
    (OUTPUT_HDR + 4, ">I", 9, "unexpected bytes"),
    (HIDDEN_HDR + 4, ">I", 0, "out_dim 0"),
    (HIDDEN_HDR + 4, ">I", 5000, "out_dim 5000"),
])
def test_malformed_header_fields_are_refused(weights: bytes, offset: int, fmt: str,
                                             value, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        qmodel.decode(_patch(weights, offset, fmt, value))


def test_every_truncation_and_any_trailing_byte_is_refused(weights: bytes) -> None:
    for n in range(len(weights)):
        with pytest.raises(ModelError, match="truncated"):
            qmodel.decode(weights[:n])
    with pytest.raises(ModelError, match="1 unexpected bytes"):
        qmodel.decode(weights + b"\x00")


def test_accumulator_overflow_is_refused() -> None:
    layers = [Layer(np.full((2, 64), 127, np.int8), np.array([2**31 - 1000, 0], np.int32),
                    2**30, 31),
              Layer(np.ones((2, 2), np.int8), np.zeros(2, np.int32), 0, 0)]
    with pytest.raises(ModelError, match="layer 0: accumulators could reach"):
        qmodel.encode(layers, input_size=64, input_max=16)
    with pytest.raises(ModelError, match="layer 1: accumulators"):
        _tiny(2**30, 31, [[1]], [0], [[1]], [2**31 - 100])


def test_unreadable_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read weights file"):
        qmodel.load(tmp_path / "missing.bin")
    path = tmp_path / "bad.bin"
    path.write_bytes(b"OQNN")
    with pytest.raises(ModelError, match="truncated"):
        qmodel.load(path)


# -- tasks ---------------------------------------------------------------------------------------


def test_task_id_and_hash_derivations() -> None:
    model_hash, data = bytes.fromhex(MODEL_HASH), bytes(range(17)) * 4
    input_hash = keccak256(data[:64])
    task = Task.create(model_hash, data[:64], nonce=7)
    assert task.input_hash == input_hash
    assert task.task_id == derive_task_id(model_hash, input_hash, 7) == keccak256(
        model_hash + input_hash + (7).to_bytes(32, "big"))
    assert Task.create(model_hash, data[:64], nonce=8).task_id != task.task_id
    assert Task.create(model_hash, data[:64]).task_id == derive_task_id(model_hash,
                                                                        input_hash, 0)


def test_task_id_equals_solidity_abi_encode() -> None:
    import eth_abi  # comes with eth-account
    model_hash, input_hash, nonce = b"\x01" * 32, b"\x02" * 32, 2**255 + 3
    encoded = eth_abi.encode(["bytes32", "bytes32", "uint256"], [model_hash, input_hash, nonce])
    assert derive_task_id(model_hash, input_hash, nonce) == keccak256(encoded)


@pytest.mark.parametrize(("args", "match"), [
    ((b"\x01" * 31, b"\x02" * 32, 0), "model_hash must be 32 bytes"),
    ((b"\x01" * 32, b"\x02" * 33, 0), "input_hash must be 32 bytes"),
    ((b"\x01" * 32, b"\x02" * 32, -1), "uint256"),
    ((b"\x01" * 32, b"\x02" * 32, 2**256), "uint256"),
])
def test_bad_task_id_arguments_are_refused(args, match: str) -> None:
    with pytest.raises(TaskError, match=match):
        derive_task_id(*args)


def test_run_gives_the_committed_output_and_its_hash(model: Model, fixed) -> None:
    inputs, outputs, meta = fixed
    task = Task.create(model.model_hash, inputs, nonce=1)
    result = run(task, model)
    assert result == TaskOutput(outputs, keccak256(outputs))
    assert "0x" + result.output_hash.hex() == meta["output_hash"]
    signed = result.result(task, epoch=5)
    assert signed.as_tuple() == (task.task_id, model.model_hash, keccak256(inputs),
                                 keccak256(outputs), 5)


def test_a_task_for_another_model_is_refused(model: Model, fixed) -> None:
    inputs, _, _ = fixed
    other = bytes(32)
    with pytest.raises(WrongModelError, match="loaded model is 0x" + MODEL_HASH):
        run(Task.create(other, inputs), model)


def test_a_task_with_a_bad_input_is_refused(model: Model) -> None:
    task = Task.create(model.model_hash, bytes(10))
    with pytest.raises(TaskInputError, match="positive multiple of 64"):
        run(task, model)


def test_posted_task_checks_the_input_against_its_hash(model: Model, fixed) -> None:
    inputs, outputs, _ = fixed
    task = Task.from_posted(b"\x05" * 32, model.model_hash, keccak256(inputs), inputs)
    assert run(task, model).output == outputs
    with pytest.raises(TaskInputError, match="inputHash"):
        Task.from_posted(b"\x05" * 32, model.model_hash, keccak256(inputs), inputs[:-64])


def test_task_fields_are_checked() -> None:
    with pytest.raises(TaskError, match="task_id must be 32 bytes"):
        Task(b"\x00" * 31, b"\x00" * 32, b"")
    with pytest.raises(TaskError, match="input must be bytes"):
        Task(b"\x00" * 32, b"\x00" * 32, "pixels")  # type: ignore[arg-type]


# -- the training script (needs scikit-learn's bundled digits) ----------------------------------


def test_held_out_accuracy_matches_the_recorded_figure(model: Model) -> None:
    import sklearn  # noqa: F401  (the [test] extra installs it; training needs it)

    from node.tasks import train

    images, labels = train.load_digits_data()
    _, held = train.split(len(images))
    predicted = qmodel.predicted_classes(model, qmodel.infer(model, images[held].tobytes()))
    correct = int(np.sum(np.array(predicted) == labels[held]))
    meta = json.loads(WEIGHTS.with_suffix(".json").read_text())
    assert correct == meta["held_out_correct_int8"]
    assert correct / len(held) > 0.95
    inputs = (EXPECTED / "digits-inputs.bin").read_bytes()
    assert train.fixed_inputs(images, held).tobytes() == inputs


@pytest.mark.slow
def test_training_reproduces_the_committed_files(tmp_path: Path) -> None:
    import sklearn  # noqa: F401  (the [test] extra installs it; training needs it)

    from node.tasks import train

    out = tmp_path / "digits-int8.bin"
    assert train.main(["--out", str(out), "--expected-dir", str(tmp_path / "expected")]) == 0
    assert out.read_bytes() == WEIGHTS.read_bytes()
    assert out.with_suffix(".json").read_bytes() == WEIGHTS.with_suffix(".json").read_bytes()
    for name in ("digits-inputs.bin", "digits-outputs.bin", "digits.json"):
        assert (tmp_path / "expected" / name).read_bytes() == (EXPECTED / name).read_bytes()


@pytest.mark.slow
def test_tasks_benchmark_quick_run_reports_every_capability() -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "benchmarks.tasks", "--quick", "--json"],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert len(rows) == 4 and all(row["ours"] > 0 for row in rows)
