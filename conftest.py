"""Loads the one pytest plugin of this repository for `tests/` and `providers/*/tests/` alike.

A `conftest.py` rather than a `pytest11` entry point: an entry point would load the plugin, with
its autouse isolation fixture, into the pytest run of every project that merely installs
cloudorch. A provider kept outside this repository opts in the same way, in its own conftest.
"""

pytest_plugins = ["cloudorch.testing.plugin"]
