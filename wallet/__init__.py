"""Keys and signing, usable on board and on the ground (see DESIGN.md)."""
