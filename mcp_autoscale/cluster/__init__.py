"""Cluster backends: where pool state is read and the (gated) writes land."""

from mcp_autoscale.cluster.base import ClusterBackend

__all__ = ["ClusterBackend"]
