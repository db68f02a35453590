"""Fleets: many stacks (plan files, each per stage) run as one command, in the order their
cross-stack references give, on a local process pool or a Dask cluster.

It owns finding stacks (`discover`: paths, folders, `fleet.yaml`), ordering and selecting them
(`graph`), the work one stack does on a worker (`task`: the same library code a single-stack
command runs, returning a typed result), the executors (`executor`), the run of a whole fleet
with per-account limits and skips after failures (`orchestrate`), and the reports (`report`).
It uses `run`, never `api` or `cli`, and never prints.
"""

from cloudorch.fleet.discover import Fleet, Stack, discover
from cloudorch.fleet.orchestrate import FleetResult, run_fleet
from cloudorch.fleet.task import StackResult, StackTask

__all__ = ["Fleet", "FleetResult", "Stack", "StackResult", "StackTask", "discover", "run_fleet"]
