"""How fast the node runs the digits task, against a float forward pass of the same model.

Run from the repository root::

    python -m benchmarks.tasks            # full run (a few seconds)
    python -m benchmarks.tasks --quick    # small sizes, for the smoke test
    python -m benchmarks.tasks --json     # results as JSON instead of the table

Inputs are the committed fixed input set (``node/tasks/expected/digits-inputs.bin``),
repeated to the batch size. One core, best of several runs, taking turns.

* **Ours**: :func:`node.tasks.model.infer` -- input validation, the int64/int32 integer
  forward pass, canonical output bytes -- on a batch; and the same one image per call; and
  :func:`node.tasks.task.run` for one-image tasks (adds the model check and keccak of input
  and output).
* **Baseline** (named): the float32 numpy forward pass of the same network (weights
  dequantised, ``x @ W.T + b``, ReLU, argmax) on the same batch -- what a non-bit-exact float
  implementation would cost. No target: the integer path only has to be affordable.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from benchmarks.common import Row, as_json, environment, interleaved, measured, pin_to_one_core
from benchmarks.common import render as render_table
from node.tasks import model as qmodel
from node.tasks.task import Task, run

EXPECTED = qmodel.WEIGHTS_PATH.parent.parent / "expected" / "digits-inputs.bin"


def float_forward(model: qmodel.Model):
    """A float32 forward pass of ``model`` with dequantised weights (the baseline)."""
    hidden, output = model.layers
    w1 = hidden.weights.astype(np.float32).T.copy()
    b1 = hidden.biases.astype(np.float32)
    scale = np.float32(hidden.multiplier / 2**hidden.shift)
    w2 = output.weights.astype(np.float32).T.copy()
    b2 = output.biases.astype(np.float32)

    def forward(images: np.ndarray) -> np.ndarray:
        h = np.maximum(images.astype(np.float32) @ w1 + b1, 0) * scale
        return np.argmax(h @ w2 + b2, axis=1)

    return forward


def measure(quick: bool) -> list[Row]:
    model = qmodel.load()
    base = EXPECTED.read_bytes()
    batch = 256 if quick else 4096
    repeats = 3 if quick else 9
    images = (base * (batch // 64 + 1))[: batch * 64]
    array = np.frombuffer(images, dtype=np.uint8).reshape(batch, 64)
    singles = [images[i:i + 64] for i in range(0, 64 * min(batch, 256), 64)]
    tasks = [Task.create(model.model_hash, one, nonce=i) for i, one in enumerate(singles)]
    baseline = float_forward(model)

    ours_batch, float_batch = interleaved(
        [lambda: qmodel.infer(model, images), lambda: baseline(array)], repeats)
    ours_single, = interleaved([lambda: [qmodel.infer(model, one) for one in singles]], repeats)
    ours_task, = interleaved([lambda: [run(task, model) for task in tasks]], repeats)
    raw = qmodel.WEIGHTS_PATH.read_bytes()
    load, = interleaved([lambda: qmodel.decode(raw)], repeats)
    return [
        measured(f"integer inference, batch of {batch}", "images/s", batch, ours_batch,
                 float_batch),
        measured("integer inference, one image per call", "images/s", len(singles),
                 ours_single),
        measured("task run (1 image, keccak in/out)", "tasks/s", len(tasks), ours_task),
        measured("decode + validate weights file", "ms/model", 1, load),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tasks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    cpu = pin_to_one_core()
    rows = measure(args.quick)
    notes = ["baseline: float32 numpy forward of the same network (dequantised weights), "
             "same batch; not bit-exact, shown for scale"]
    if args.json:
        print(json.dumps(as_json(rows, environment=environment(cpu), notes=notes), indent=2))
    else:
        print(render_table(rows, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
