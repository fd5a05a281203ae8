"""Meshes (L3): one `Mesh` per data plane or service mesh, the `none` baseline included."""

from meshlab.meshes.base import Mesh, MeshInfo, get_mesh, mesh_names, register_mesh

__all__ = ["Mesh", "MeshInfo", "get_mesh", "mesh_names", "register_mesh"]
