"""The local playground: echo workload, real Envoy/nginx/haproxy sidecars on loopback."""
