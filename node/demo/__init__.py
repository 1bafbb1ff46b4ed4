"""``orbital demo``: the whole constellation, end to end, behind the link (issue #18).

The parts, one job each:

* :mod:`node.demo.scenario` -- the constellation (sun-synchronous trains), the stations and
  the contact plan with eclipses;
* :mod:`node.demo.ground` -- the chain "on the ground" (anvil), the contracts, the
  operators who register satellites, post tasks and sign heads;
* :mod:`node.demo.fleet` -- each satellite's on-board files, its node configuration and its
  ``orbital node run`` process;
* :mod:`node.demo.run` -- the stages, the link emulators, the ground's duties during passes,
  the watch and the JSON report.
"""
