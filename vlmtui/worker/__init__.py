"""The worker subprocess (``python -m vlmtui.worker``): one model, its backend, probes, servers."""
