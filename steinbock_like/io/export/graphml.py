"""Spatial object graphs (steinbock's ``export graphs``): GraphML, GEXF or GML, via networkx.

One graph per image: nodes are the objects that have at least one neighbour
(IDs as node keys), edges the neighbour pairs with their ``Distance``, node
attributes the object data columns. The graph is undirected when every pair
appears in both directions, directed otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like.io.atomic import atomic_path

FORMATS = ("graphml", "gexf", "gml")


def neighbors_graph(neighbors: pd.DataFrame, node_data: pd.DataFrame | None = None):
    """Build a networkx graph from a neighbors table.

    Parameters
    ----------
    neighbors : DataFrame
        ``Object``, ``Neighbor``, ``Distance`` (and any further edge columns).
    node_data : DataFrame, optional
        Object data indexed by object ID; rows of objects without neighbours are ignored.

    Returns
    -------
    networkx.Graph or networkx.DiGraph
    """
    import networkx as nx

    pairs = neighbors[["Object", "Neighbor"]].to_numpy(dtype=np.int64)
    undirected = np.sort(pairs, axis=1)
    _, counts = np.unique(undirected, axis=0, return_counts=True)
    directed = bool(len(counts)) and bool((counts != 2).any())
    graph = nx.from_pandas_edgelist(
        neighbors,
        source="Object",
        target="Neighbor",
        edge_attr=True,
        create_using=nx.DiGraph if directed else nx.Graph,
    )
    if node_data is not None and len(node_data.columns):
        table = node_data
        if all(pd.api.types.is_numeric_dtype(t) for t in table.dtypes):
            table = table.astype(np.float64)
        attributes = table.to_dict(orient="index")
        nx.set_node_attributes(graph, {int(k): v for k, v in attributes.items()})
    return graph


def graph_suffix(graph_format: str) -> str:
    return "." + graph_format


def write_graph(path: str | Path, graph, graph_format: str = "graphml") -> None:
    """Write a graph atomically in ``graph_format`` (graphml, gexf or gml)."""
    import networkx as nx

    writers = {"graphml": nx.write_graphml_lxml, "gexf": nx.write_gexf, "gml": nx.write_gml}
    with atomic_path(path) as tmp:
        writers[graph_format](graph, str(tmp))
