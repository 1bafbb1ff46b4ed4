"""Errors of the command line itself (not of the data it checks)."""

from __future__ import annotations


class UsageError(Exception):
    """The options given are missing a required choice or contradict each other: exit 2
    with one line saying what to pass."""
