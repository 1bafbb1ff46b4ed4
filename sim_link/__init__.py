"""The link emulator: orbits, contact plans and a plan-gated TCP proxy (see DESIGN.md)."""
