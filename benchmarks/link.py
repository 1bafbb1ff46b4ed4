"""The link emulator's benchmarks in one run (the issue's ``benchmarks/link.py``):

* :mod:`benchmarks.link_plan` -- contact-plan computation for 100 satellites x 10 stations
  x 24 h against a straightforward skyfield loop (target >= 10x faster, < 10 s);
* :mod:`benchmarks.link_emulator` -- the emulator unshaped against a direct loopback
  connection, and configured against measured rate and delay.
* :mod:`benchmarks.link_eclipses` -- eclipse intervals for 100 satellites x 24 h against
  skyfield's ``is_sunlit`` sampled every second, and the boundary error (target < 1 s).

Run from the repository root: ``python -m benchmarks.link [--quick] [--json] [--check]``
(the flags are passed to each).
"""

from __future__ import annotations

import sys

from benchmarks import link_eclipses, link_emulator, link_plan


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print("== contact plans ==", flush=True)
    plan_code = link_plan.main(args)
    print("\n== emulator ==", flush=True)
    emulator_code = link_emulator.main(args)
    return max(plan_code, emulator_code, eclipses(args))


def eclipses(args: list[str]) -> int:
    """The eclipse rows (kept apart so other rows merge easily)."""
    print("\n== eclipses ==", flush=True)
    return link_eclipses.main(args)


if __name__ == "__main__":
    sys.exit(main())
