"""cloudorch: provision AWS, Azure and Google Cloud and promote releases from one plan file.

The library surface is `cloudorch.api`; every other module owns one noun. Layers, lowest first:
errors | clock, actor, markdown | graph, provider, state | changes, planfile, graph_export, sandbox |
policy | engine | run | release, testing | api | cli. A module imports only from layers below its
own (`tests/test_layers.py` checks it; `docs/architecture.md` says why), so importing this package
stays cheap (no provider, no SDK).
"""

__version__ = "0.1.0"
