"""The verified node's I/O side: an untrusted upstream (``upstream_api``, ``upstream``), head
trust (``heads``), header sync, proven state and the local EVM (``witness``, ``evm``), blocks,
receipts and logs (``blocks``), and the local JSON-RPC server (``server``). Verification
itself is :mod:`node.chain` (pure functions over typed data)."""
