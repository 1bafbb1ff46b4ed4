"""The one base class of the errors a user of ``sim_link`` can meet (a malformed TLE,
configuration or plan, a wrong emulator option). Light to import, so the CLI can catch
them without loading the orbit code."""

from __future__ import annotations


class LinkError(ValueError):
    """Bad input to sim_link; the message names the file, field or option."""
