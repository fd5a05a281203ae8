"""Kubernetes environment: cluster access through the official client, context snapshots, in-cluster
fortio load, Prometheus telemetry and a configuration check. Import submodules directly
(`from meshlab.k8s.cluster import Cluster`); nothing heavy is imported here.
"""
