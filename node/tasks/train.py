"""Train, quantise and write the digits model (``node/tasks/weights/digits-int8.bin``).

    python -m node.tasks.train --out node/tasks/weights/digits-int8.bin \\
        [--expected-dir node/tasks/expected]

Data: scikit-learn's bundled 8x8 digits (``sklearn.datasets.load_digits``, 1,797 images,
pixels 0..16; the data ships inside the package, nothing is downloaded). The split needs no
random numbers: image ``i`` is held out when ``i % 5 == 4`` (359 images), the rest (1,438)
train. Everything after loading is numpy.

Model: a 64-32-10 perceptron (ReLU hidden layer) on ``pixels / 16``, trained in float64 by
mini-batch SGD with momentum on the softmax cross-entropy, seeded. Float training only needs
to be repeatable on one machine (re-running this script here reproduces the committed file);
what must be bit-exact everywhere is inference from the committed integer weights, which is
:mod:`node.tasks.model`'s job.

Quantisation (post-training, symmetric, per layer):

* input: the pixel value ``q`` itself, real value ``q / 16``;
* weights: ``round(W / s_w)`` with ``s_w = max|W| / 127``, int8;
* biases: ``round(b / (s_in * s_w))``, int32 at the accumulator's scale;
* hidden activations: scale ``s_h = max over the training set of ReLU(h) / 127``; the
  accumulator is requantised by ``M = s_in * s_w / s_h`` written as ``multiplier / 2**shift``
  with ``multiplier`` in ``[2**30, 2**31)``;
* the output accumulators are the logits (a positive scale does not change the argmax).

``--expected-dir`` also writes the fixed input set and its expected output bytes that
``tests/test_tasks.py`` pins (see :func:`fixed_inputs`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from node.chain.hashing import keccak256
from node.tasks import model as qmodel

SEED = 20260101
HIDDEN = 32
EPOCHS = 80
BATCH = 32
LEARNING_RATE = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
INPUT_MAX = 16
N_FIXED_DIGITS = 60
"""Held-out digits in the fixed input set (followed by 4 synthetic edge cases)."""


def load_digits_data() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: ``(images uint8 (1797, 64), labels uint8)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("training needs scikit-learn for its bundled digits data: "
                         "pip install scikit-learn (the [test] extra)") from exc
    digits = load_digits()
    images = np.asarray(digits.data).astype(np.uint8)
    labels = np.asarray(digits.target).astype(np.uint8)
    assert images.shape[1] == 64 and int(images.max()) <= INPUT_MAX
    return images, labels


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, held_out)``: every fifth image (``i % 5 == 4``) is held out."""
    idx = np.arange(n)
    return idx[idx % 5 != 4], idx[idx % 5 == 4]


def train_float(images: np.ndarray, labels: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float64 weights ``(W1 (32, 64), b1, W2 (10, 32), b2)`` of the perceptron."""
    rng = np.random.default_rng(SEED)
    x = images.astype(np.float64) / INPUT_MAX
    y = np.eye(10)[labels]
    w1 = rng.normal(0.0, math.sqrt(2.0 / 64), (HIDDEN, 64))
    b1 = np.zeros(HIDDEN)
    w2 = rng.normal(0.0, math.sqrt(2.0 / HIDDEN), (10, HIDDEN))
    b2 = np.zeros(10)
    params = [w1, b1, w2, b2]
    velocity = [np.zeros_like(p) for p in params]
    for _ in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            batch = order[start:start + BATCH]
            xb, yb = x[batch], y[batch]
            h = np.maximum(xb @ w1.T + b1, 0.0)
            z = h @ w2.T + b2
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            dz = (p - yb) / len(batch)
            dh = (dz @ w2) * (h > 0)
            grads = [dh.T @ xb + WEIGHT_DECAY * w1, dh.sum(axis=0),
                     dz.T @ h + WEIGHT_DECAY * w2, dz.sum(axis=0)]
            for param, vel, grad in zip(params, velocity, grads, strict=True):
                vel *= MOMENTUM
                vel -= LEARNING_RATE * grad
                param += vel
    return w1, b1, w2, b2


def float_accuracy(params: tuple[np.ndarray, ...], images: np.ndarray,
                   labels: np.ndarray) -> float:
    w1, b1, w2, b2 = params
    h = np.maximum(images / INPUT_MAX @ w1.T + b1, 0.0)
    return float(np.mean(np.argmax(h @ w2.T + b2, axis=1) == labels))


def fixed_point(m: float) -> tuple[int, int]:
    """``(multiplier, shift)`` with ``multiplier / 2**shift ~= m`` and multiplier in
    ``[2**30, 2**31)``."""
    if not m > 0:
        raise ValueError(f"requantisation scale must be positive, got {m}")
    mantissa, exponent = math.frexp(m)  # m = mantissa * 2**exponent, mantissa in [0.5, 1)
    multiplier = round(mantissa * 2**31)
    shift = 31 - exponent
    if multiplier == 2**31:
        multiplier //= 2
        shift -= 1
    if not 1 <= shift <= 62:
        raise ValueError(f"requantisation scale {m} needs shift {shift}, outside 1..62")
    return multiplier, shift


def _quantise_weights(w: np.ndarray) -> tuple[np.ndarray, float]:
    scale = float(np.abs(w).max()) / 127.0
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def quantise(params: tuple[np.ndarray, ...], calibration: np.ndarray) -> bytes:
    """The weights file for the float ``params``; ``calibration`` (training images) sets the
    hidden activations' scale."""
    w1, b1, w2, b2 = params
    s_in = 1.0 / INPUT_MAX
    q_w1, s_w1 = _quantise_weights(w1)
    q_b1 = np.round(b1 / (s_in * s_w1)).astype(np.int32)
    hidden = np.maximum(calibration / INPUT_MAX @ w1.T + b1, 0.0)
    s_h = float(hidden.max()) / qmodel.ACT_MAX
    multiplier, shift = fixed_point(s_in * s_w1 / s_h)
    q_w2, s_w2 = _quantise_weights(w2)
    q_b2 = np.round(b2 / (s_h * s_w2)).astype(np.int32)
    layers = [qmodel.Layer(q_w1, q_b1, multiplier, shift), qmodel.Layer(q_w2, q_b2, 0, 0)]
    return qmodel.encode(layers, input_size=64, input_max=INPUT_MAX)


def fixed_inputs(images: np.ndarray, held_out: np.ndarray) -> np.ndarray:
    """The pinned input set, 64 images ``uint8 (64, 64)``: the first 60 held-out digits, then
    all zeros, all 16, a checkerboard of 0/16, and the pixels ``keccak256(b"orbital digits
    edge")[i] % 17``."""
    digest = keccak256(b"orbital digits edge") * 2
    edge = np.array([
        [0] * 64,
        [INPUT_MAX] * 64,
        [INPUT_MAX * ((r + c) % 2) for r in range(8) for c in range(8)],
        [digest[i] % (INPUT_MAX + 1) for i in range(64)],
    ], dtype=np.uint8)
    return np.concatenate([images[held_out[:N_FIXED_DIGITS]], edge])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.tasks.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=qmodel.WEIGHTS_PATH,
                        help="weights file to write (default: the committed model)")
    parser.add_argument("--expected-dir", type=Path, default=None,
                        help="also write the fixed inputs and their expected outputs here")
    args = parser.parse_args(argv)

    images, labels = load_digits_data()
    train_idx, held_idx = split(len(images))
    params = train_float(images[train_idx], labels[train_idx])
    data = quantise(params, images[train_idx])
    model = qmodel.decode(data)

    float_acc = float_accuracy(params, images[held_idx], labels[held_idx])
    out = qmodel.infer(model, images[held_idx].tobytes())
    correct = int(np.sum(np.array(qmodel.predicted_classes(model, out)) == labels[held_idx]))
    quant_acc = correct / len(held_idx)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    meta = {
        "file": args.out.name,
        "model_hash": "0x" + model.model_hash.hex(),
        "size_bytes": len(data),
        "architecture": "64-32-10 MLP, ReLU; int8 weights, int32 biases/accumulators",
        "data": "sklearn.datasets.load_digits; held out: index % 5 == 4",
        "seed": SEED,
        "held_out_images": len(held_idx),
        "held_out_accuracy_float": round(float_acc, 4),
        "held_out_accuracy_int8": round(quant_acc, 4),
        "held_out_correct_int8": correct,
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out} ({len(data)} bytes), model hash {meta['model_hash']}")
    print(f"held-out accuracy: float {float_acc:.4f}, int8 {quant_acc:.4f} "
          f"({len(held_idx)} images)")

    if args.expected_dir is not None:
        inputs = fixed_inputs(images, held_idx)
        input_bytes = inputs.tobytes()
        output = qmodel.infer(model, input_bytes)
        args.expected_dir.mkdir(parents=True, exist_ok=True)
        (args.expected_dir / "digits-inputs.bin").write_bytes(input_bytes)
        (args.expected_dir / "digits-outputs.bin").write_bytes(output)
        expected = {
            "model_hash": "0x" + model.model_hash.hex(),
            "inputs": "digits-inputs.bin: 64 records of 64 pixels (0..16); records 0..59 are "
                      "the first 60 held-out digits, 60..63 synthetic edge cases "
                      "(node.tasks.train.fixed_inputs)",
            "outputs": "digits-outputs.bin: 64 records of 41 bytes (10 int32 big-endian "
                       "logits, class byte)",
            "input_hash": "0x" + keccak256(input_bytes).hex(),
            "output_hash": "0x" + keccak256(output).hex(),
            "labels": [int(v) for v in labels[held_idx[:N_FIXED_DIGITS]]],
        }
        (args.expected_dir / "digits.json").write_text(json.dumps(expected, indent=2) + "\n")
        print(f"wrote the fixed inputs and expected outputs to {args.expected_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
