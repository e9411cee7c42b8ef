"""`make cluster-test`: the Helm chart on a real single-node Kubernetes built
here from Go modules (scripts/cluster.sh). Outside tests/ on purpose, like
bench/ and soak/: `make test` runs `pytest tests`, and this needs root, a
cluster and minutes; scripts/cluster-test.sh runs it."""
