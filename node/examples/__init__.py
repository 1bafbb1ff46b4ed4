"""Example chain data captured from anvil by scripts/capture_example.py (see source.json)."""
