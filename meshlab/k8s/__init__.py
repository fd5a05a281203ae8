"""The cluster-client layer: cluster access through the official client, context snapshots,
in-cluster fortio load and Prometheus telemetry. It knows no mesh: what is mesh-specific arrives
as parameters from `meshlab.meshes`. Import submodules directly; nothing heavy is imported here.
"""
