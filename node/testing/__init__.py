"""Testing with orbital: the pytest plugin (:mod:`node.testing.pytest_plugin`, loaded by
the ``pytest11`` entry point) and what its fixtures are made of -- a node process
(:mod:`~node.testing.node_process`), an emulated link (:mod:`~node.testing.link`), SoftHSM2
tokens (:mod:`~node.testing.softhsm`) and a keystore wallet (:mod:`~node.testing.wallet`)."""
