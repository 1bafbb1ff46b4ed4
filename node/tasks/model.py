"""Quantised multilayer perceptrons: the weights file format and bit-exact integer inference.

Every satellite that re-executes a task must produce the *same bytes*, so inference uses
integers only: int8 weights, int32 biases and accumulators, requantisation by an integer
multiply and a right shift, ReLU as a clamp, and argmax with a fixed tie rule. Integer
arithmetic is exact and associative, so the result does not depend on the CPU, BLAS, the
summation order or the numpy version. No float is created anywhere on the inference path
(``tests/test_tasks.py`` checks every intermediate array's dtype and the functions' code).

Input encoding
    One image is 64 bytes: the 8x8 pixels row by row (row 0 first, left to right), each an
    unsigned integer 0..16 -- exactly the values scikit-learn's ``load_digits`` gives. The
    input of :func:`infer` is one or more images concatenated (a multiple of 64 bytes, at
    least one image). A byte above the model's ``input_max`` (16) is refused.

Arithmetic of one layer (``W`` int8 ``[out][in]``, ``b`` int32 ``[out]``)
    ``acc = W @ x + b`` computed exactly. :func:`decode` proves, from the weights, that no
    accumulator can leave the int32 range for any valid input, and refuses a file for which it
    could; the sums are therefore the true int32 accumulations. A hidden layer then
    requantises: ``y = clamp((acc * multiplier + 2**(shift-1)) >> shift, 0, 127)`` in int64
    (``>>`` is an arithmetic shift, i.e. floor, so adding half first rounds half up, towards
    +infinity); the lower clamp is the ReLU. The next layer takes ``y`` (0..127) as its input.
    The last layer has no requantisation: its int32 accumulators are the logits.

Output encoding (:data:`OUTPUT_RECORD_SIZE` = 41 bytes per image)
    The 10 logits as int32 big-endian two's complement (40 bytes), then one byte: the
    predicted class, the index of the largest logit; on a tie the *lowest* index wins. For a
    batch the records are concatenated in input order. ``output_hash = keccak256(output)``.

Weights file (all integers big-endian) ::

    magic      4 bytes  b"OQNN"
    version    u16      1
    n_layers   u16      1..8
    input_size u32      values per input record (64)
    input_max  u32      largest valid input value (16)
    then for each layer:
      in_dim     u32    == previous layer's out_dim (the first: input_size), 1..4096
      out_dim    u32    1..4096
      flags      u32    bit 0: requantise + ReLU (set on every layer but the last, never on it)
      multiplier u32    fixed-point multiplier, 1..2**31-1 (0 on the last layer)
      shift      u32    right shift, 1..62 (0 on the last layer)
      weights    out_dim*in_dim int8, row-major ([out][in])
      biases     out_dim int32
    nothing after the last layer.

``model_hash = keccak256(file bytes)``: the file *is* the model.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from node.chain.hashing import keccak256

MAGIC = b"OQNN"
VERSION = 1
MAX_LAYERS = 8
MAX_DIM = 4096
ACT_MAX = 127
"""Largest value a requantised hidden activation takes (the upper clamp)."""
FLAG_REQUANT = 1
LOGIT_BYTES = 4
N_CLASSES_MAX = 256
"""The class index is one byte."""

_HEADER = struct.Struct(">4sHHII")
_LAYER = struct.Struct(">IIIII")
_INT32_MAX = 2**31 - 1

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "digits-int8.bin"
"""The committed digits model."""
DIGITS_MODEL_HASH = bytes.fromhex(
    "9060da005bda8383623b226e972d8e75f11c847b944de084c8cb2f6ea8554f14")
"""keccak256 of the committed digits model: its ``modelHash``."""


class ModelError(ValueError):
    """A weights file or an inference input is malformed; the message says what and where."""


@dataclass(frozen=True)
class Layer:
    """One fully connected layer."""

    weights: np.ndarray
    """int8, shape ``(out_dim, in_dim)``."""
    biases: np.ndarray
    """int32, shape ``(out_dim,)``, at the accumulator's scale."""
    multiplier: int
    """Requantisation multiplier (0 on the output layer)."""
    shift: int
    """Requantisation right shift (0 on the output layer)."""

    @property
    def requantises(self) -> bool:
        return self.multiplier != 0

    @property
    def in_dim(self) -> int:
        return int(self.weights.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.weights.shape[0])


@dataclass(frozen=True)
class Model:
    """A decoded, validated quantised model and the hash of the bytes it came from."""

    layers: tuple[Layer, ...]
    input_size: int
    """Values per input record (64 for the 8x8 digits)."""
    input_max: int
    """Largest valid input value (16)."""
    model_hash: bytes
    """keccak256 of the weights file."""

    @property
    def n_classes(self) -> int:
        return self.layers[-1].out_dim

    @property
    def output_record_size(self) -> int:
        """Bytes of output per input record: the logits and the class byte."""
        return LOGIT_BYTES * self.n_classes + 1


OUTPUT_RECORD_SIZE = 41
"""Output bytes per image of the committed digits model (10 int32 logits + class byte)."""


# -- the file format ---------------------------------------------------------------------------


def encode(layers: list[Layer] | tuple[Layer, ...], *, input_size: int, input_max: int) -> bytes:
    """The weights file for ``layers``. The result is validated by :func:`decode`, so a
    model that could overflow its accumulators is never written."""
    out = bytearray(_HEADER.pack(MAGIC, VERSION, len(layers), input_size, input_max))
    for layer in layers:
        flags = FLAG_REQUANT if layer.requantises else 0
        out += _LAYER.pack(layer.in_dim, layer.out_dim, flags, layer.multiplier, layer.shift)
        out += np.ascontiguousarray(layer.weights, dtype=np.int8).tobytes()
        out += np.ascontiguousarray(layer.biases, dtype=">i4").tobytes()
    data = bytes(out)
    decode(data)
    return data


def decode(data: bytes) -> Model:
    """Read and validate a weights file; raise :class:`ModelError` naming the first problem."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise ModelError(f"weights file truncated: {len(data)} bytes, the header alone is "
                         f"{_HEADER.size}")
    magic, version, n_layers, input_size, input_max = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise ModelError(f"not a quantised model file: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise ModelError(f"unsupported model file version {version} (this node reads "
                         f"version {VERSION})")
    if not 1 <= n_layers <= MAX_LAYERS:
        raise ModelError(f"model has {n_layers} layers; 1..{MAX_LAYERS} are supported")
    if not 1 <= input_size <= MAX_DIM:
        raise ModelError(f"input_size {input_size} out of range 1..{MAX_DIM}")
    if not 1 <= input_max <= 255:
        raise ModelError(f"input_max {input_max} out of range 1..255 (inputs are bytes)")
    pos = _HEADER.size
    layers: list[Layer] = []
    prev_dim, prev_max = input_size, input_max
    for i in range(n_layers):
        where = f"layer {i}"
        if len(data) - pos < _LAYER.size:
            raise ModelError(f"weights file truncated in the header of {where} "
                             f"(offset {pos}, {len(data)} bytes)")
        in_dim, out_dim, flags, multiplier, shift = _LAYER.unpack_from(data, pos)
        pos += _LAYER.size
        if in_dim != prev_dim:
            raise ModelError(f"{where}: in_dim {in_dim} does not match the previous width "
                             f"{prev_dim}")
        if not 1 <= out_dim <= MAX_DIM:
            raise ModelError(f"{where}: out_dim {out_dim} out of range 1..{MAX_DIM}")
        last = i == n_layers - 1
        if flags & ~FLAG_REQUANT:
            raise ModelError(f"{where}: unknown flags 0x{flags:x}")
        if last:
            if flags or multiplier or shift:
                raise ModelError(f"{where}: the output layer must not requantise (flags, "
                                 f"multiplier and shift must be 0)")
            if out_dim > N_CLASSES_MAX:
                raise ModelError(f"{where}: {out_dim} classes; at most {N_CLASSES_MAX} fit "
                                 f"the class byte")
        else:
            if flags != FLAG_REQUANT:
                raise ModelError(f"{where}: a hidden layer must requantise (flag bit 0)")
            if not 1 <= multiplier <= _INT32_MAX:
                raise ModelError(f"{where}: multiplier {multiplier} out of range "
                                 f"1..{_INT32_MAX}")
            if not 1 <= shift <= 62:
                raise ModelError(f"{where}: shift {shift} out of range 1..62")
        n_w, n_b = in_dim * out_dim, 4 * out_dim
        if len(data) - pos < n_w + n_b:
            raise ModelError(f"weights file truncated in {where}: needs {n_w + n_b} bytes of "
                             f"weights and biases at offset {pos}, has {len(data) - pos}")
        weights = np.frombuffer(data, dtype=np.int8, count=n_w, offset=pos)
        weights = weights.reshape(out_dim, in_dim).copy()
        pos += n_w
        biases = np.frombuffer(data, dtype=">i4", count=out_dim, offset=pos).astype(np.int32)
        pos += n_b
        # The largest |accumulator| any valid input can produce must fit int32.
        bound = int(np.abs(weights.astype(np.int64)).sum(axis=1).max()) * prev_max
        bound += int(np.abs(biases.astype(np.int64)).max())
        if bound > _INT32_MAX:
            raise ModelError(f"{where}: accumulators could reach {bound}, beyond int32")
        # acc * multiplier + rounding must stay inside int64.
        if not last and bound * multiplier + (1 << (shift - 1)) >= 2**63:
            raise ModelError(f"{where}: requantisation could overflow int64")
        layers.append(Layer(weights, biases, int(multiplier), int(shift)))
        prev_dim, prev_max = out_dim, ACT_MAX
    if pos != len(data):
        raise ModelError(f"{len(data) - pos} unexpected bytes after the last layer "
                         f"(file is {len(data)} bytes, the model ends at {pos})")
    return Model(tuple(layers), int(input_size), int(input_max), keccak256(data))


def load(path: str | Path = WEIGHTS_PATH) -> Model:
    """Read and decode the weights file at ``path`` (default: the committed digits model)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read weights file {path}: {exc.strerror or exc}") from exc
    return decode(data)


def model_hash(data: bytes) -> bytes:
    """keccak256 of a weights file's bytes -- the ``modelHash`` of a task."""
    return keccak256(bytes(data))


# -- inference ---------------------------------------------------------------------------------


def parse_inputs(model: Model, input_bytes: bytes) -> np.ndarray:
    """The records of ``input_bytes`` as an int32 array ``(n, input_size)``; refuse an empty
    input, a length that is not a multiple of the record size, or a value above
    ``input_max``."""
    size = model.input_size
    if not input_bytes or len(input_bytes) % size:
        raise ModelError(f"input is {len(input_bytes)} bytes; expected a positive multiple "
                         f"of {size} (one record per image)")
    raw = np.frombuffer(bytes(input_bytes), dtype=np.uint8).reshape(-1, size)
    if int(raw.max()) > model.input_max:
        record, index = (int(v) for v in np.argwhere(raw > model.input_max)[0])
        raise ModelError(f"input record {record} value {index} is {int(raw[record, index])}; "
                         f"pixels are 0..{model.input_max}")
    return raw.astype(np.int32)


def forward(model: Model, x: np.ndarray, trace: list[np.ndarray] | None = None) -> np.ndarray:
    """The int32 logits ``(n, n_classes)`` for the int32 records ``x`` ``(n, input_size)``
    (values already checked to lie in 0..input_max). ``trace``, if given, receives every
    intermediate array (tests check none is a float)."""
    act = x
    for layer in model.layers:
        # int64 products and sums are exact; decode() proved the sums fit int32.
        acc = act.astype(np.int64) @ layer.weights.T.astype(np.int64)
        acc = (acc + layer.biases.astype(np.int64)).astype(np.int32)
        if trace is not None:
            trace.append(acc)
        if layer.requantises:
            scaled = acc.astype(np.int64) * layer.multiplier + (1 << (layer.shift - 1))
            scaled = np.right_shift(scaled, layer.shift)
            act = np.clip(scaled, 0, ACT_MAX).astype(np.int32)
            if trace is not None:
                trace.extend((scaled, act))
        else:
            act = acc
    return act


def encode_outputs(logits: np.ndarray) -> bytes:
    """Canonical output bytes of int32 ``logits`` ``(n, classes)``: per record the logits as
    int32 big-endian then the argmax byte (lowest index on a tie; ``np.argmax`` returns the
    first maximum)."""
    n, classes = logits.shape
    records = np.empty((n, LOGIT_BYTES * classes + 1), dtype=np.uint8)
    records[:, :-1] = logits.astype(">i4").view(np.uint8).reshape(n, LOGIT_BYTES * classes)
    records[:, -1] = np.argmax(logits, axis=1).astype(np.uint8)
    return records.tobytes()


def infer(model: Model, input_bytes: bytes) -> bytes:
    """Run ``model`` on one or more concatenated input records; return the canonical output
    bytes (one :attr:`Model.output_record_size`-byte record per input record)."""
    return encode_outputs(forward(model, parse_inputs(model, input_bytes)))


def infer_batch(model: Model, images: np.ndarray) -> list[bytes]:
    """Vectorised inference over an ``(n, input_size)`` array of pixel values; the output
    record of each image, in order (each equal to ``infer(model, image_bytes)``)."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != model.input_size:
        raise ModelError(f"images must have shape (n, {model.input_size}), got {images.shape}")
    if images.dtype.kind not in "ui":
        raise ModelError(f"images must be integers, got dtype {images.dtype}")
    if images.size and (int(images.min()) < 0 or int(images.max()) > model.input_max):
        raise ModelError(f"pixel values must lie in 0..{model.input_max}")
    out = infer(model, images.astype(np.uint8).tobytes())
    size = model.output_record_size
    return [out[i:i + size] for i in range(0, len(out), size)]


def predicted_classes(model: Model, output: bytes) -> list[int]:
    """The class byte of each record of ``output`` (from :func:`infer`)."""
    size = model.output_record_size
    if len(output) % size:
        raise ModelError(f"output is {len(output)} bytes, not a multiple of {size}")
    return list(output[size - 1::size])
