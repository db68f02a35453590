"""Export the dependency graph for other tools: GraphML, GEXF and node-link JSON, written by networkx.

The compact `cloudorch.graph` stays on the hot path (plan, apply, the scheduler); networkx is
imported inside `export` only, so `cloudorch --help` and a plain plan never load it. Imports only
`graph` and `errors` of cloudorch; never prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cloudorch.errors import CloudorchError, ConfigError

if TYPE_CHECKING:
    import networkx as nx

    from cloudorch.graph import Graph

FORMATS = ("graphml", "gexf", "node-link")


def export(graph: Graph, fmt: str, *, actions: Mapping[str, str] | None = None) -> str:
    """The graph as text in `fmt`: nodes with their attributes (type, provider, kind, stage, and
    `action` when `actions` maps an address to its planned action), edges dependency -> dependent.

    Nodes and edges are written sorted, so the same plan gives the same file (GEXF also stamps the
    date into its header).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown graph format {fmt!r}", hint="one of: " + ", ".join(FORMATS))
    try:
        import networkx as nx
    except ImportError:
        raise CloudorchError(
            f"exporting the graph as {fmt} needs networkx, which is not installed",
            hint="pip install networkx (a dependency of cloudorch; it was left out of this install)",
        ) from None
    scalar_only = fmt != "node-link"
    g: nx.DiGraph[str] = nx.DiGraph(name="cloudorch")
    for node in sorted(graph.nodes):
        attrs = dict(graph.nodes[node])
        if actions is not None and node in actions:
            attrs["action"] = actions[node]
        g.add_node(node, **_attributes(attrs, scalar_only))
    g.add_edges_from(sorted(graph.edges))
    if fmt == "graphml":
        return "\n".join(nx.generate_graphml(g)) + "\n"
    if fmt == "gexf":
        return "\n".join(nx.generate_gexf(g)) + "\n"
    # `edges="edges"`: networkx's coming default; spelling it out keeps the key stable across versions
    data = nx.node_link_data(g, edges="edges")
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def _attributes(attrs: Mapping[str, Any], scalar_only: bool) -> dict[str, Any]:
    """GraphML and GEXF hold one scalar type per attribute key: strings everywhere (a list such as
    a stage's `needs` as JSON text), so a key never changes type from one node to the next."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if scalar_only:
            out[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        else:
            out[key] = value
    return out

