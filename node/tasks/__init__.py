"""Deterministic AI tasks: a quantised digits classifier run in integer arithmetic.

* :mod:`node.tasks.model` -- the weights file format (``modelHash = keccak256(file)``) and
  bit-exact int8/int32 inference with its canonical output bytes.
* :mod:`node.tasks.task` -- a task (taskId, modelHash, input), its derivations, and running it.
* :mod:`node.tasks.train` -- the script that trained and quantised the committed weights.
"""
